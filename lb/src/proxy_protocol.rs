//! PROXY protocol headers (HAProxy's spec, v1 text and v2 binary) sent to a
//! server before the client's bytes, so RabbitMQ (`proxy_protocol = true`)
//! sees the real client address.

use std::net::{IpAddr, SocketAddr};

use crate::config::SendProxy;

/// v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The header announcing a TCP connection from `client` to `destination`
/// (the address the client connected to), or nothing for `None`.
pub fn header(version: SendProxy, client: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    // Mixed families (an IPv4 client on a dual-stack listener): announce
    // both as IPv6, v4-mapped, as the spec requires one family.
    let (src, dst) = match (client.ip(), destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (client, destination),
        _ => (v6(client), v6(destination)),
    };
    match version {
        SendProxy::None => Vec::new(),
        SendProxy::V1 => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        SendProxy::V2 => {
            let mut h = V2_SIGNATURE.to_vec();
            h.push(0x21); // version 2, PROXY command
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    h.push(0x11); // AF_INET, STREAM
                    h.extend_from_slice(&12u16.to_be_bytes());
                    h.extend_from_slice(&s.octets());
                    h.extend_from_slice(&d.octets());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    h.push(0x21); // AF_INET6, STREAM
                    h.extend_from_slice(&36u16.to_be_bytes());
                    h.extend_from_slice(&s.octets());
                    h.extend_from_slice(&d.octets());
                }
                _ => unreachable!("families were made equal above"),
            }
            h.extend_from_slice(&src.port().to_be_bytes());
            h.extend_from_slice(&dst.port().to_be_bytes());
            h
        }
    }
}

fn v6(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_text_matches_the_spec_examples() {
        assert_eq!(
            header(SendProxy::V1, a("192.168.0.1:56324"), a("192.168.0.11:443")),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        assert_eq!(
            header(
                SendProxy::V1,
                a("[2001:db8::1]:1000"),
                a("[2001:db8::2]:5672")
            ),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 5672\r\n"
        );
    }

    #[test]
    fn v2_binary_ipv4_and_ipv6() {
        let h = header(SendProxy::V2, a("10.0.0.1:1234"), a("10.0.0.2:5672"));
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[10, 0, 0, 1]);
        assert_eq!(&h[20..24], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 1234);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 5672);
        assert_eq!(h.len(), 16 + 12);
        let h = header(SendProxy::V2, a("[::1]:1"), a("[::2]:2"));
        assert_eq!(h[13], 0x21);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 36);
        assert_eq!(h.len(), 16 + 36);
    }

    #[test]
    fn mixed_families_are_announced_as_mapped_ipv6() {
        assert_eq!(
            header(SendProxy::V1, a("10.0.0.1:1"), a("[::1]:2")),
            b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n"
        );
        assert!(header(SendProxy::None, a("10.0.0.1:1"), a("10.0.0.2:2")).is_empty());
    }
}
