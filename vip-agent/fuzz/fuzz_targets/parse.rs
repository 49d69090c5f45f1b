#![no_main]
//! Fuzz the VRRP receive path: arbitrary bytes as a raw-socket IPv4 datagram and as a
//! bare VRRP message, both versions, both checksum modes. Must never panic; anything
//! that parses must re-encode to something that parses to the same advert.

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use warren_vip::vrrp::packet::{self, ChecksumMode, Version};

fuzz_target!(|data: &[u8]| {
    for version in [Version::V2, Version::V3] {
        for pseudo in [true, false] {
            let mode = ChecksumMode { v3_pseudo_header: pseudo };
            if let Ok(rx) = packet::parse_ipv4(data, version, mode) {
                // v2 interval 0 is representable on the wire but our encoder never
                // sends it (at least 1 s); everything else must round-trip.
                if version == Version::V2 && rx.advert.adver_int_cs == 0 {
                    continue;
                }
                let again = packet::encode_ipv4(&rx.advert, mode, rx.src, rx.dst);
                let rx2 = packet::parse_ipv4(&again, version, mode).expect("re-encoded advert parses");
                assert_eq!(rx2.advert, rx.advert);
            }
            let _ = packet::parse(data, version, mode, Ipv4Addr::new(10, 220, 0, 1), packet::VRRP_MCAST_V4);
        }
    }
});
