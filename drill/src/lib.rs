pub mod accounting;
pub mod drill;
pub mod mgmt;
pub mod report;
pub mod target;
pub mod workload;
