//! warren-drill: failover drills for a RabbitMQ HA deployment. A workload
//! (confirming publishers, acking consumers) runs through the endpoint while
//! a fault hurts the cluster or the load balancer; then every message id is
//! accounted for (Jepsen-style) and the evidence that the fault took effect
//! is judged. [`drill`] runs the phases; docs/drills.md is the user's guide.
//!
//! # Why the drill does not share warren-health's parsers
//!
//! The drill reads the same management API as warren-health's `rabbitmq`
//! check (`/api/nodes`: running, partitions) and judges what warren-lb and
//! warren-vip did with it. It parses those documents itself ([`mgmt`]) and
//! decides for itself whether the cluster is whole, who leads the queue and
//! whether a node was down ([`evidence`]), on purpose: the accountant must
//! not share code with what it judges. A bug in a shared parser (a field
//! misread, a partition entry ignored) would blind the lb and the drill the
//! same way, and the drill would report PASS for exactly the failure it
//! exists to catch. The duplication is the price of an independent witness;
//! keep it, and do not import `warren_health` here.

pub mod accounting;
pub mod drill;
pub mod event;
pub mod evidence;
pub mod mgmt;
pub mod report;
pub mod ssh;
pub mod target;
pub mod tls;
pub mod witness;
pub mod workload;
