//! The schema of `DIR/testbed.json`, which `scripts/testbed up` writes and
//! prints and `scripts/testbed status` prints with each node's view added.
//!
//! Unknown fields are refused, so that a field added to or renamed in the
//! script fails here, at the one parser, instead of reading as missing in a
//! test far away.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// A bed as `scripts/testbed` records it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The bed's directory (absolute).
    pub dir: String,
    /// The bed's id (its subnet is 10.210.ID.0/24); None once it is down.
    pub id: Option<u32>,
    /// The administrator the nodes are booted with.
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// `mirrored` or `quorum`.
    pub mode: String,
    /// The bridge's address in the root namespace, where the tests run: the
    /// client address the nodes see.
    pub host_ip: IpAddr,
    /// The root filesystem a 4.0 bed runs from (None: the machine's own).
    pub rootfs: Option<String>,
    /// The version the broker itself reports (e.g. `3.10.8`); None only
    /// while `up` is still booting.
    pub version: Option<String>,
    /// `mnesia`, or `khepri` once `up --khepri` has enabled the `khepri_db`
    /// feature flag (4.0) and the broker reported it enabled.
    pub metadata_store: String,
    pub bridge: String,
    /// `up --tls`: the CA files (None: a bed without TLS).
    pub tls: Option<BedTls>,
    pub nodes: Vec<Node>,
}

/// The CAs of an `up --tls` bed (PEM files in DIR/tls).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BedTls {
    /// Signs every node's certificate (until `tls-cert --kind other-ca`).
    pub ca: PathBuf,
    /// Signs nothing a node serves: what a client that trusts the wrong
    /// CA holds.
    pub other_ca: PathBuf,
}

/// One RabbitMQ node of the bed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// 1-based, what `--node N` takes.
    pub index: usize,
    /// The Erlang node name (`rabbit@IP`), as the management API names it.
    pub name: String,
    /// The network namespace the node runs in.
    pub netns: String,
    pub ip: IpAddr,
    pub amqp_port: u16,
    pub mgmt_port: u16,
    pub dist_port: u16,
    /// `up --tls`: AMQPS and management over HTTPS (None without).
    pub amqps_port: Option<u16>,
    pub mgmt_tls_port: Option<u16>,
    /// The Erlang VM's pid (None: not running).
    pub pid: Option<u32>,
    /// `status` only: the nodes this node sees running (None: it did not
    /// answer).
    #[serde(default)]
    pub sees_running: Option<Vec<String>>,
    /// `status` only: this node sees every node of the bed running.
    #[serde(default)]
    pub whole: Option<bool>,
}

impl State {
    /// Parses what `scripts/testbed up` or `status` printed, or
    /// `testbed.json`.
    pub fn parse(json: &[u8]) -> Result<State, String> {
        serde_json::from_slice(json).map_err(|e| {
            format!(
                "not a testbed state (scripts/testbed's testbed.json schema): {e}: {}",
                String::from_utf8_lossy(json)
            )
        })
    }
}

impl Node {
    /// The node's AMQP listener.
    pub fn amqp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.amqp_port)
    }

    /// The node's management API listener.
    pub fn management_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.mgmt_port)
    }

    /// The base URL of the node's management API (no trailing slash).
    pub fn management_url(&self) -> String {
        format!("http://{}", self.management_addr())
    }

    /// The node's AMQPS listener; panics on a bed without `up --tls`.
    pub fn amqps_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, tls_port(self.amqps_port))
    }

    /// The node's management API over HTTPS; panics on a bed without
    /// `up --tls`.
    pub fn management_tls_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, tls_port(self.mgmt_tls_port))
    }
}

fn tls_port(port: Option<u16>) -> u16 {
    port.expect("the bed has no TLS listeners: start it with `up --tls`")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `up` prints for a 1-node bed (scripts/testbed's cmd_up).
    const UP: &str = r#"{
      "dir": "/tmp/bed", "id": 3, "user": "admin", "password": "secret",
      "vhost": "/", "mode": "mirrored", "host_ip": "10.210.3.1",
      "rootfs": null, "version": "3.10.8", "metadata_store": "mnesia", "bridge": "wtb3-br",
      "tls": {"ca": "/tmp/bed/tls/ca.pem", "other_ca": "/tmp/bed/tls/other-ca.pem"},
      "nodes": [{"index": 1, "name": "rabbit@10.210.3.11", "netns": "wtb3-n1",
                 "ip": "10.210.3.11", "amqp_port": 5672, "mgmt_port": 15672,
                 "dist_port": 25672, "amqps_port": 5671, "mgmt_tls_port": 15671,
                 "pid": 4242}]
    }"#;

    #[test]
    fn up_output_parses_into_addresses() {
        let s = State::parse(UP.as_bytes()).unwrap();
        assert_eq!(s.version.as_deref(), Some("3.10.8"));
        let n = &s.nodes[0];
        assert_eq!(n.amqp_addr(), "10.210.3.11:5672".parse().unwrap());
        assert_eq!(n.management_url(), "http://10.210.3.11:15672");
        assert_eq!(n.amqps_addr(), "10.210.3.11:5671".parse().unwrap());
        assert_eq!(
            n.management_tls_addr(),
            "10.210.3.11:15671".parse().unwrap()
        );
        assert_eq!(s.tls.unwrap().ca, PathBuf::from("/tmp/bed/tls/ca.pem"));
        assert_eq!((n.sees_running.clone(), n.whole), (None, None));
    }

    #[test]
    fn status_output_carries_each_node_s_view() {
        let status = UP.replace(
            r#""pid": 4242"#,
            r#""pid": 4242, "sees_running": ["rabbit@10.210.3.11"], "whole": true"#,
        );
        let s = State::parse(status.as_bytes()).unwrap();
        assert_eq!(s.nodes[0].whole, Some(true));
    }

    #[test]
    fn a_field_the_schema_does_not_know_is_named() {
        let changed = UP.replace(r#""vhost""#, r#""vhosts""#);
        let e = State::parse(changed.as_bytes()).unwrap_err();
        assert!(e.contains("vhosts"), "{e}");
    }
}
