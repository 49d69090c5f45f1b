//! `rabbitmq` check: cluster-aware eligibility of one RabbitMQ node, judged
//! from that node's own management HTTP API.
//!
//! The check passes only if:
//! 1. its management API answers `GET /api/overview`, `GET /api/nodes` and
//!    `GET /api/health/checks/local-alarms` in the shapes the check knows,
//!    and `/api/overview`'s `rabbitmq_version` is of a line it knows (3.x,
//!    4.x: `version::BrokerLine`);
//! 2. its own entry in `/api/nodes` (found by `/api/overview`'s `node`) is
//!    `running`;
//! 3. it sees a strict majority of the cluster's member nodes running *and
//!    not partitioned from it* (counted over the nodes it lists in
//!    `/api/nodes`, minus those named in its own `partitions` list);
//! 4. it has no local alarm (memory, disk);
//! 5. it is not in maintenance mode (`being_drained`).
//!
//! A partition entry is *data*, not a verdict: it goes into the
//! [`NodeReport`] and only disqualifies the node when it leaves the node
//! without a majority (rule 3).  Under `pause_minority` the majority nodes
//! keep listing a frozen-and-resumed node in their `partitions` for 30 s and
//! more; failing them for it refused the healthy majority.  Whether the node
//! really is *with* the majority is decided by warren-lb's cross-check of all
//! nodes' reports (`lb/src/majority.rs`, docs/health-checks.md), which a
//! single node's view cannot decide.

mod answer;
mod judge;
mod version;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use tokio::time::Instant;

pub use answer::Answer;
pub use judge::judge;
use judge::{LOCAL_ALARMS, NODES, OVERVIEW};

use super::error::ProbeError;
use super::http::get;
use super::tls::CheckTls;

/// Where and how to reach one node's management API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitCheck {
    /// e.g. `http://10.210.1.11:15672` (no trailing path).
    pub base_url: String,
    pub username: String,
    pub password: String,
    /// The TLS of an `https://` base URL (management over HTTPS, 15671).
    pub tls: Option<CheckTls>,
}

/// What an eligible node reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's Erlang name, e.g. `rabbit@10.210.1.11`.
    pub node: String,
    /// `cluster_name` from `/api/overview`, when present.
    pub cluster_name: Option<String>,
    /// Names of the member nodes it sees running (itself included).
    pub running: Vec<String>,
    /// Names of the nodes its own `/api/nodes` entry lists in `partitions`:
    /// nodes it has (or had, the list lags) a network partition with.
    pub partitions: Vec<String>,
    /// Number of member nodes it lists.
    pub total: usize,
}

/// Runs the check against the node behind `check.base_url` within `timeout`.
///
/// The requests go one after the other, `/api/nodes` last.  Sent together,
/// they kept a partitioned 4.0 node eligible a little longer than its
/// peers' APIs said (`real_partitioned_primary_is_never_used_and_the_
/// majority_keeps_serving_on_4_0` failed both runs; one after the other it
/// passed both, docs/health-checks.md).  The likely cause: while a peer is frozen or cut off the API
/// stalls, and a request made during the stall is answered when it ends
/// with the cluster view from before it.  Asked for last, the view is as
/// fresh as the check can have it.
pub async fn rabbitmq(check: &RabbitCheck, timeout: Duration) -> Result<NodeReport, ProbeError> {
    let deadline = Instant::now() + timeout;
    let base = check.base_url.trim_end_matches('/');
    let fetch = |path: &'static str| async move {
        let url = format!("{base}{path}");
        let (status, body) = get(
            &url,
            Some(&check.username),
            Some(&check.password),
            check.tls.as_ref(),
            deadline,
        )
        .await?;
        Ok::<_, ProbeError>(Answer { status, body })
    };
    let overview = fetch(OVERVIEW).await?;
    let local_alarms = fetch(LOCAL_ALARMS).await?;
    let nodes = fetch(NODES).await?;
    judge(&overview, &nodes, &local_alarms)
}
