//! The `HOST:PORT` form of an address, for the keys that take a DNS name
//! where an `IP:PORT` would do (warren-lb's `server.address`, warren-vip's
//! `track.address`).
//!
//! Only the syntax is checked here: resolving the name is the running
//! program's business (at each resolution, as HAProxy resolves a server
//! name), never the configuration's, so a file is judged the same on any
//! host.

/// `HOST:PORT` with an RFC 1123 host name and a port from 1 to 65535, split
/// at the last `:`; `None` for anything else.
///
/// An IP address is not a host name here: parse `text` as a
/// [`std::net::SocketAddr`] first (`127.0.0.1:5672`, `[::1]:5672`), and call
/// this for what that refuses.
pub fn host_port(text: &str) -> Option<(&str, u16)> {
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
    use super::host_port;

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
