pub mod accounting;
pub mod mgmt;
pub mod target;
pub mod workload;
