//! Sans-IO VRRP: wire format, state machine and the advertised priority.
pub mod machine;
pub mod packet;
pub mod priority;
