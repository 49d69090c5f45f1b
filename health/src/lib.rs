//! Health checking shared by warren-lb and warren-vip.
