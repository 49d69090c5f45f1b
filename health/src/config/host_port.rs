//! The address of a peer as a configuration file writes it: `IP:PORT`,
//! `[IPv6]:PORT`, or `HOST:PORT` for the keys that take a DNS name
//! (warren-lb's `server.address`, warren-vip's `track.address`).
//!
//! Only the syntax is checked here: resolving the name is the running
//! program's business (at each resolution, as HAProxy resolves a server
//! name), never the configuration's, so a file is judged the same on any
//! host.

use std::fmt;
use std::net::SocketAddr;

/// A peer's address, kept as written: a name is resolved by the program
/// that connects, each time it needs the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `IP:PORT` or `[IPv6]:PORT`.
    Ip(SocketAddr),
    /// `HOST:PORT`, with an RFC 1123 host name.
    Name { host: String, port: u16 },
}

impl Address {
    pub fn port(&self) -> u16 {
        match self {
            Address::Ip(a) => a.port(),
            Address::Name { port, .. } => *port,
        }
    }

    pub fn host(&self) -> String {
        match self {
            Address::Ip(a) => a.ip().to_string(),
            Address::Name { host, .. } => host.clone(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(a) => write!(f, "{a}"),
            Address::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Why a text is not an [`Address`]; each program words its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// An IP address with port 0 (an OS-chosen port, never a peer's).
    PortZero,
    /// Neither `IP:PORT` nor `HOST:PORT`.
    Malformed,
}

/// `text` as an [`Address`]: an IP first (`127.0.0.1:5672`, `[::1]:5672`),
/// else `HOST:PORT`. The port is from 1 to 65535. No trimming: a caller that
/// accepts surrounding blanks trims first.
pub fn parse_address(text: &str) -> Result<Address, AddressError> {
    match text.parse::<SocketAddr>() {
        Ok(ip) if ip.port() == 0 => Err(AddressError::PortZero),
        Ok(ip) => Ok(Address::Ip(ip)),
        Err(_) => host_port(text)
            .map(|(host, port)| Address::Name {
                host: host.to_owned(),
                port,
            })
            .ok_or(AddressError::Malformed),
    }
}

/// `HOST:PORT` with an RFC 1123 host name and a port from 1 to 65535, split
/// at the last `:`; `None` for anything else (an IP address included).
fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    valid_hostname(host).then_some((host, port))
}

/// RFC 1123 host names: dot-separated labels of letters, digits and hyphens.
fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_is_taken_before_a_name_and_port_zero_is_told_apart() {
        assert_eq!(
            parse_address("127.0.0.1:5672"),
            Ok(Address::Ip("127.0.0.1:5672".parse().unwrap()))
        );
        assert_eq!(
            parse_address("[::1]:5672"),
            Ok(Address::Ip("[::1]:5672".parse().unwrap()))
        );
        assert_eq!(
            parse_address("rabbit1:5672"),
            Ok(Address::Name {
                host: "rabbit1".into(),
                port: 5672
            })
        );
        assert_eq!(parse_address("10.0.0.1:0"), Err(AddressError::PortZero));
        assert_eq!(parse_address("rabbit1:0"), Err(AddressError::Malformed));
        assert_eq!(parse_address(" rabbit1:5672"), Err(AddressError::Malformed));
    }

    #[test]
    fn names_with_a_port_are_accepted() {
        assert_eq!(host_port("rabbit1:5672"), Some(("rabbit1", 5672)));
        assert_eq!(
            host_port("warren-lb.messaging.svc.cluster.local:8404"),
            Some(("warren-lb.messaging.svc.cluster.local", 8404))
        );
        assert_eq!(host_port("localhost:65535"), Some(("localhost", 65535)));
    }

    #[test]
    fn malformed_names_and_ports_are_refused() {
        for text in [
            "rabbit1",       // no port
            "rabbit1:",      // empty port
            ":5672",         // empty host
            "rabbit1:0",     // port 0
            "rabbit1:65536", // port out of range
            "rabbit1:-1",    // not a number
            "rabbit 1:5672", // space in the host
            "rabbit1: 5672", // space before the port
            "rabbit1.:5672", // empty label
            "-rabbit1:5672", // label starting with '-'
            "rabbit_1:5672", // not a host name character
            "::1:5672",      // an IPv6 address without brackets
            "[::1]:5672",    // an IP is not a name: SocketAddr parses it
        ] {
            assert_eq!(host_port(text), None, "{text:?}");
        }
        let long_label = format!("{}:80", "a".repeat(64));
        assert_eq!(host_port(&long_label), None);
    }
}
