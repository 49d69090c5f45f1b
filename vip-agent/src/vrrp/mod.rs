//! Sans-IO VRRP: wire format and state machine.
pub mod machine;
pub mod packet;
