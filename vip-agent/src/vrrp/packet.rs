//! VRRP advertisement encoding, parsing and checksums (RFC 3768 v2, RFC 5798 v3), IPv4 only.
//!
//! Pure functions: no sockets. The IO shell hands received IPv4 datagrams to
//! [`parse_ipv4`], which validates everything RFC 5798 §7.1 asks a receiver to check that
//! does not depend on local configuration (TTL, version, type, length, checksum); the
//! per-instance checks (VRID, peers, address list, v2 auth/interval) live in
//! [`validate_for_instance`].

use std::net::Ipv4Addr;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// IPv4 multicast group of VRRP.
pub const VRRP_MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Advertisement packet type (the only one defined).
pub const TYPE_ADVERT: u8 = 1;
/// VRRPv2 authentication data length (two 32-bit words).
pub const V2_AUTH_LEN: usize = 8;

/// Protocol version on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// A decoded advertisement (IPv4 addresses only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds. v2 carries whole seconds on the wire;
    /// it is converted to centiseconds here so the state machine sees one unit.
    pub adver_int_cs: u16,
    pub addrs: Vec<Ipv4Addr>,
    /// v2 only: authentication type (0 none, 1 simple password, 2 AH). 0 for v3.
    pub auth_type: u8,
    /// v2 only: authentication data (password for type 1). Zero for v3.
    pub auth_data: [u8; V2_AUTH_LEN],
}

/// Why a received packet was dropped. Every variant has a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than the headers or the address count says, bad IP header.
    Malformed,
    /// IPv4 TTL was not 255 (RFC 5798 §7.1).
    Ttl,
    /// Version nibble was not the configured version.
    Version,
    /// Type was not 1 (advertisement).
    Type,
    /// Checksum did not verify.
    Checksum,
    /// VRID not configured on this instance.
    Vrid,
    /// Unicast mode: source not in `unicast_peer`.
    Peer,
    /// Address count or address list differs from the configured virtual addresses.
    AddrMismatch,
    /// v2: authentication type or data differs from the configuration.
    Auth,
    /// v2: advertisement interval differs from the configured one (RFC 3768 §7.1).
    Interval,
    /// We are the address owner (priority 255) and got an advert for our VRID; or the
    /// packet is our own, looped back.
    Own,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::Ttl,
        DropReason::Version,
        DropReason::Type,
        DropReason::Checksum,
        DropReason::Vrid,
        DropReason::Peer,
        DropReason::AddrMismatch,
        DropReason::Auth,
        DropReason::Interval,
        DropReason::Own,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Ttl => "ttl",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Checksum => "checksum",
            DropReason::Vrid => "vrid",
            DropReason::Peer => "peer",
            DropReason::AddrMismatch => "addr_mismatch",
            DropReason::Auth => "auth",
            DropReason::Interval => "interval",
            DropReason::Own => "own",
        }
    }
}

/// RFC 1071 Internet checksum over `chunks` (treated as one concatenated byte string).
pub fn inet_checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for chunk in chunks {
        for &b in *chunk {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = IPPROTO_VRRP;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// How the checksum is computed: v2 always over the VRRP message only; v3 over the IPv4
/// pseudo-header + message (RFC 5798, keepalived default) unless `v3_pseudo_header` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumMode {
    pub v3_pseudo_header: bool,
}

impl Default for ChecksumMode {
    fn default() -> Self {
        ChecksumMode {
            v3_pseudo_header: true,
        }
    }
}

fn checksum_for(
    version: Version,
    mode: ChecksumMode,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    msg: &[u8],
) -> u16 {
    if version == Version::V3 && mode.v3_pseudo_header {
        inet_checksum(&[&pseudo_header(src, dst, msg.len()), msg])
    } else {
        inet_checksum(&[msg])
    }
}

/// Encode the VRRP message (no IP header). `src`/`dst` are the IPv4 addresses the datagram
/// will carry (needed for the v3 pseudo-header).
pub fn encode(adv: &Advert, mode: ChecksumMode, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let n = adv.addrs.len().min(255);
    let mut out = Vec::with_capacity(8 + 4 * n + V2_AUTH_LEN);
    out.push((adv.version.number() << 4) | TYPE_ADVERT);
    out.push(adv.vrid);
    out.push(adv.priority);
    out.push(n as u8);
    match adv.version {
        Version::V2 => {
            out.push(adv.auth_type);
            // v2 carries whole seconds; round up, never 0.
            let secs = adv.adver_int_cs.div_ceil(100).clamp(1, 255);
            out.push(secs as u8);
        }
        Version::V3 => {
            let cs = adv.adver_int_cs & 0x0fff;
            out.extend_from_slice(&cs.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0]);
    for a in adv.addrs.iter().take(n) {
        out.extend_from_slice(&a.octets());
    }
    if adv.version == Version::V2 {
        out.extend_from_slice(&adv.auth_data);
    }
    let ck = checksum_for(adv.version, mode, src, dst, &out);
    out[6..8].copy_from_slice(&ck.to_be_bytes());
    out
}

/// Build a full IPv4 datagram (header + VRRP message) for a raw `IPPROTO_RAW` socket.
/// TTL 255, TOS internet-control, header checksum filled in.
pub fn encode_ipv4(adv: &Advert, mode: ChecksumMode, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let msg = encode(adv, mode, src, dst);
    let total = 20 + msg.len();
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[1] = 0xc0;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 255;
    ip[9] = IPPROTO_VRRP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let ck = inet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    ip.extend_from_slice(&msg);
    ip
}

/// Parse a VRRP message (no IP header) that arrived from `src` to `dst`, expecting
/// `version`. Verifies version, type, length and checksum.
pub fn parse(
    msg: &[u8],
    version: Version,
    mode: ChecksumMode,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<Advert, DropReason> {
    if msg.len() < 8 {
        return Err(DropReason::Malformed);
    }
    let ver = msg[0] >> 4;
    let typ = msg[0] & 0x0f;
    if ver != version.number() {
        return Err(DropReason::Version);
    }
    if typ != TYPE_ADVERT {
        return Err(DropReason::Type);
    }
    let count = usize::from(msg[3]);
    let need = 8
        + 4 * count
        + if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
    if msg.len() < need {
        return Err(DropReason::Malformed);
    }
    // Trailing bytes beyond the declared length are not covered by our checksum view;
    // keepalived ignores them too, but we checksum exactly the declared message.
    let msg = &msg[..need];
    if checksum_for(version, mode, src, dst, msg) != 0 {
        return Err(DropReason::Checksum);
    }
    let (adver_int_cs, auth_type) = match version {
        Version::V2 => (u16::from(msg[5]) * 100, msg[4]),
        Version::V3 => (u16::from_be_bytes([msg[4], msg[5]]) & 0x0fff, 0),
    };
    let addrs = (0..count)
        .map(|i| {
            let o = 8 + 4 * i;
            Ipv4Addr::new(msg[o], msg[o + 1], msg[o + 2], msg[o + 3])
        })
        .collect();
    let mut auth_data = [0u8; V2_AUTH_LEN];
    if version == Version::V2 {
        auth_data.copy_from_slice(&msg[8 + 4 * count..need]);
    }
    Ok(Advert {
        version,
        vrid: msg[1],
        priority: msg[2],
        adver_int_cs,
        addrs,
        auth_type,
        auth_data,
    })
}

/// A received IPv4 datagram carrying VRRP, after the IP-level checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub advert: Advert,
}

/// Parse a full IPv4 datagram as delivered by a raw socket (IP header included): checks
/// the IP header, protocol, TTL == 255, then [`parse`].
pub fn parse_ipv4(
    pkt: &[u8],
    version: Version,
    mode: ChecksumMode,
) -> Result<Received, DropReason> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return Err(DropReason::Malformed);
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return Err(DropReason::Malformed);
    }
    if pkt[9] != IPPROTO_VRRP {
        return Err(DropReason::Malformed);
    }
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    // Linux raw sockets deliver the header with total length in network order (host order
    // on some BSDs); accept either a consistent length or the buffer length.
    let end = if total >= ihl && total <= pkt.len() {
        total
    } else {
        pkt.len()
    };
    let ttl = pkt[8];
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    if ttl != 255 {
        return Err(DropReason::Ttl);
    }
    let advert = parse(&pkt[ihl..end], version, mode, src, dst)?;
    Ok(Received {
        src,
        dst,
        ttl,
        advert,
    })
}

/// What a received advert is checked against (one VRRP instance's configuration).
#[derive(Debug, Clone)]
pub struct InstanceView<'a> {
    pub vrid: u8,
    pub version: Version,
    /// Configured advertisement interval in centiseconds (v2 interval check).
    pub adver_int_cs: u16,
    pub vips: &'a [Ipv4Addr],
    /// Unicast peers; empty = multicast (any source accepted).
    pub peers: &'a [Ipv4Addr],
    /// Our own source addresses (drop our own looped-back adverts).
    pub own: &'a [Ipv4Addr],
    pub owner: bool,
    pub v2_auth_type: u8,
    pub v2_auth_data: [u8; V2_AUTH_LEN],
}

/// Per-instance receive checks of RFC 5798 §7.1 / RFC 3768 §7.1.
pub fn validate_for_instance(rx: &Received, inst: &InstanceView<'_>) -> Result<(), DropReason> {
    let a = &rx.advert;
    if a.vrid != inst.vrid {
        return Err(DropReason::Vrid);
    }
    if inst.own.contains(&rx.src) {
        return Err(DropReason::Own);
    }
    if !inst.peers.is_empty() && !inst.peers.contains(&rx.src) {
        return Err(DropReason::Peer);
    }
    if inst.owner {
        return Err(DropReason::Own);
    }
    if a.addrs.len() != inst.vips.len() {
        return Err(DropReason::AddrMismatch);
    }
    // Order-insensitive comparison.
    if !inst.vips.iter().all(|v| a.addrs.contains(v)) {
        return Err(DropReason::AddrMismatch);
    }
    if inst.version == Version::V2 {
        if a.auth_type != inst.v2_auth_type
            || (a.auth_type == 1 && a.auth_data != inst.v2_auth_data)
        {
            return Err(DropReason::Auth);
        }
        if a.adver_int_cs != inst.adver_int_cs.div_ceil(100).clamp(1, 255) * 100 {
            return Err(DropReason::Interval);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 11);

    fn adv(version: Version) -> Advert {
        Advert {
            version,
            vrid: 51,
            priority: 150,
            adver_int_cs: 100,
            addrs: vec![Ipv4Addr::new(10, 220, 0, 100)],
            auth_type: 0,
            auth_data: [0; 8],
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&[&data]), !0xddf2);
        // Split across chunks at an odd boundary gives the same.
        assert_eq!(inet_checksum(&[&data[..3], &data[3..]]), !0xddf2);
    }

    #[test]
    fn odd_length_checksum() {
        assert_eq!(inet_checksum(&[&[0xff]]), !0xff00);
    }

    #[test]
    fn v3_roundtrip_with_pseudo_header() {
        let a = adv(Version::V3);
        let m = ChecksumMode::default();
        let bytes = encode(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(bytes.len(), 12);
        assert_eq!(bytes[0], 0x31);
        assert_eq!(&bytes[4..6], &[0x00, 0x64]);
        assert_eq!(
            parse(&bytes, Version::V3, m, SRC, VRRP_MCAST_V4),
            Ok(a.clone())
        );
        // Verifying without the pseudo-header fails (and vice versa).
        let nop = ChecksumMode {
            v3_pseudo_header: false,
        };
        assert_eq!(
            parse(&bytes, Version::V3, nop, SRC, VRRP_MCAST_V4),
            Err(DropReason::Checksum)
        );
        let b2 = encode(&a, nop, SRC, VRRP_MCAST_V4);
        assert_eq!(parse(&b2, Version::V3, nop, SRC, VRRP_MCAST_V4), Ok(a));
        assert_eq!(
            parse(&b2, Version::V3, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Checksum)
        );
    }

    #[test]
    fn v3_pseudo_header_depends_on_addresses() {
        let a = adv(Version::V3);
        let m = ChecksumMode::default();
        let bytes = encode(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(
            parse(
                &bytes,
                Version::V3,
                m,
                Ipv4Addr::new(10, 220, 0, 12),
                VRRP_MCAST_V4
            ),
            Err(DropReason::Checksum)
        );
    }

    #[test]
    fn v3_sub_second_interval_12_bits() {
        let mut a = adv(Version::V3);
        a.adver_int_cs = 10; // 100 ms
        let m = ChecksumMode::default();
        let b = encode(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(
            parse(&b, Version::V3, m, SRC, VRRP_MCAST_V4)
                .unwrap()
                .adver_int_cs,
            10
        );
        a.adver_int_cs = 4095;
        let b = encode(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(
            parse(&b, Version::V3, m, SRC, VRRP_MCAST_V4)
                .unwrap()
                .adver_int_cs,
            4095
        );
        // Reserved high nibble is ignored on receive.
        let mut b = encode(&a, m, SRC, VRRP_MCAST_V4);
        b[4] |= 0xf0;
        b[6] = 0;
        b[7] = 0;
        let ck = inet_checksum(&[&pseudo_header(SRC, VRRP_MCAST_V4, b.len()), &b]);
        b[6..8].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(
            parse(&b, Version::V3, m, SRC, VRRP_MCAST_V4)
                .unwrap()
                .adver_int_cs,
            4095
        );
    }

    #[test]
    fn v2_roundtrip_whole_seconds_and_auth() {
        let mut a = adv(Version::V2);
        a.adver_int_cs = 300;
        let m = ChecksumMode::default();
        let b = encode(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(b.len(), 8 + 4 + 8);
        assert_eq!(b[0], 0x21);
        assert_eq!(b[5], 3);
        // v2 checksum does not include a pseudo-header: any src/dst verifies.
        let p = parse(
            &b,
            Version::V2,
            m,
            Ipv4Addr::new(1, 2, 3, 4),
            Ipv4Addr::BROADCAST,
        )
        .unwrap();
        assert_eq!(p, a);
        // Sub-second intervals round up to 1 s on the v2 wire.
        a.adver_int_cs = 10;
        let b = encode(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(b[5], 1);
        // Password auth data carried.
        a.auth_type = 1;
        a.auth_data = *b"secret\0\0";
        let b = encode(&a, m, SRC, VRRP_MCAST_V4);
        let p = parse(&b, Version::V2, m, SRC, VRRP_MCAST_V4).unwrap();
        assert_eq!(p.auth_type, 1);
        assert_eq!(&p.auth_data, b"secret\0\0");
    }

    #[test]
    fn wrong_version_type_length_checksum() {
        let m = ChecksumMode::default();
        let b = encode(&adv(Version::V3), m, SRC, VRRP_MCAST_V4);
        assert_eq!(
            parse(&b, Version::V2, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Version)
        );
        let mut t = b.clone();
        t[0] = 0x32;
        assert_eq!(
            parse(&t, Version::V3, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Type)
        );
        assert_eq!(
            parse(&b[..11], Version::V3, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            parse(&b[..4], Version::V3, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Malformed)
        );
        let mut c = b.clone();
        c[2] ^= 1;
        assert_eq!(
            parse(&c, Version::V3, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Checksum)
        );
        // Count says 2 addresses but only one present.
        let mut d = b.clone();
        d[3] = 2;
        assert_eq!(
            parse(&d, Version::V3, m, SRC, VRRP_MCAST_V4),
            Err(DropReason::Malformed)
        );
    }

    #[test]
    fn ipv4_wrapper_ttl_and_header() {
        let m = ChecksumMode::default();
        let a = adv(Version::V3);
        let pkt = encode_ipv4(&a, m, SRC, VRRP_MCAST_V4);
        assert_eq!(inet_checksum(&[&pkt[..20]]), 0, "IP header checksum valid");
        let rx = parse_ipv4(&pkt, Version::V3, m).unwrap();
        assert_eq!(rx.src, SRC);
        assert_eq!(rx.dst, VRRP_MCAST_V4);
        assert_eq!(rx.ttl, 255);
        assert_eq!(rx.advert, a);
        let mut low = pkt.clone();
        low[8] = 254;
        assert_eq!(parse_ipv4(&low, Version::V3, m), Err(DropReason::Ttl));
        let mut proto = pkt.clone();
        proto[9] = 6;
        assert_eq!(
            parse_ipv4(&proto, Version::V3, m),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            parse_ipv4(&pkt[..19], Version::V3, m),
            Err(DropReason::Malformed)
        );
        let mut ihl = pkt.clone();
        ihl[0] = 0x4f;
        assert_eq!(parse_ipv4(&ihl, Version::V3, m), Err(DropReason::Malformed));
        let mut v6 = pkt.clone();
        v6[0] = 0x65;
        assert_eq!(parse_ipv4(&v6, Version::V3, m), Err(DropReason::Malformed));
    }

    fn view<'a>(vips: &'a [Ipv4Addr], peers: &'a [Ipv4Addr], version: Version) -> InstanceView<'a> {
        InstanceView {
            vrid: 51,
            version,
            adver_int_cs: 100,
            vips,
            peers,
            own: &[],
            owner: false,
            v2_auth_type: 0,
            v2_auth_data: [0; 8],
        }
    }

    #[test]
    fn instance_checks() {
        let m = ChecksumMode::default();
        let vips = [Ipv4Addr::new(10, 220, 0, 100)];
        let rx = parse_ipv4(
            &encode_ipv4(&adv(Version::V3), m, SRC, VRRP_MCAST_V4),
            Version::V3,
            m,
        )
        .unwrap();
        assert_eq!(
            validate_for_instance(&rx, &view(&vips, &[], Version::V3)),
            Ok(())
        );
        let mut v = view(&vips, &[], Version::V3);
        v.vrid = 52;
        assert_eq!(validate_for_instance(&rx, &v), Err(DropReason::Vrid));
        let other = [Ipv4Addr::new(10, 220, 0, 12)];
        assert_eq!(
            validate_for_instance(&rx, &view(&vips, &other, Version::V3)),
            Err(DropReason::Peer)
        );
        assert_eq!(
            validate_for_instance(&rx, &view(&vips, &[SRC], Version::V3)),
            Ok(())
        );
        let two = [
            Ipv4Addr::new(10, 220, 0, 100),
            Ipv4Addr::new(10, 220, 0, 101),
        ];
        assert_eq!(
            validate_for_instance(&rx, &view(&two, &[], Version::V3)),
            Err(DropReason::AddrMismatch)
        );
        let diff = [Ipv4Addr::new(10, 220, 0, 101)];
        assert_eq!(
            validate_for_instance(&rx, &view(&diff, &[], Version::V3)),
            Err(DropReason::AddrMismatch)
        );
        let mut own = view(&vips, &[], Version::V3);
        own.owner = true;
        assert_eq!(validate_for_instance(&rx, &own), Err(DropReason::Own));
        let mut me = view(&vips, &[], Version::V3);
        let mine = [SRC];
        me.own = &mine;
        assert_eq!(validate_for_instance(&rx, &me), Err(DropReason::Own));
    }

    #[test]
    fn v2_instance_auth_and_interval() {
        let m = ChecksumMode::default();
        let vips = [Ipv4Addr::new(10, 220, 0, 100)];
        let mut a = adv(Version::V2);
        let rx = parse_ipv4(&encode_ipv4(&a, m, SRC, VRRP_MCAST_V4), Version::V2, m).unwrap();
        assert_eq!(
            validate_for_instance(&rx, &view(&vips, &[], Version::V2)),
            Ok(())
        );
        let mut v = view(&vips, &[], Version::V2);
        v.adver_int_cs = 200;
        assert_eq!(validate_for_instance(&rx, &v), Err(DropReason::Interval));
        a.auth_type = 1;
        a.auth_data = *b"pw\0\0\0\0\0\0";
        let rx = parse_ipv4(&encode_ipv4(&a, m, SRC, VRRP_MCAST_V4), Version::V2, m).unwrap();
        assert_eq!(
            validate_for_instance(&rx, &view(&vips, &[], Version::V2)),
            Err(DropReason::Auth)
        );
        let mut v = view(&vips, &[], Version::V2);
        v.v2_auth_type = 1;
        v.v2_auth_data = *b"pw\0\0\0\0\0\0";
        assert_eq!(validate_for_instance(&rx, &v), Ok(()));
        v.v2_auth_data = *b"px\0\0\0\0\0\0";
        assert_eq!(validate_for_instance(&rx, &v), Err(DropReason::Auth));
    }

    #[test]
    fn drop_labels_unique() {
        let mut l: Vec<_> = DropReason::ALL.iter().map(|d| d.label()).collect();
        l.sort();
        l.dedup();
        assert_eq!(l.len(), DropReason::ALL.len());
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            for v in [Version::V2, Version::V3] {
                for p in [true, false] {
                    let m = ChecksumMode { v3_pseudo_header: p };
                    let _ = parse_ipv4(&bytes, v, m);
                    let _ = parse(&bytes, v, m, SRC, VRRP_MCAST_V4);
                }
            }
        }

        #[test]
        fn encode_parse_roundtrip(vrid in 1u8.., prio in 0u8.., cs in 1u16..4096, n in 0usize..20, v3 in proptest::bool::ANY) {
            let version = if v3 { Version::V3 } else { Version::V2 };
            let a = Advert {
                version, vrid, priority: prio,
                adver_int_cs: if v3 { cs } else { cs.div_ceil(100).min(255) * 100 },
                addrs: (0..n).map(|i| Ipv4Addr::new(10, 220, 1, i as u8)).collect(),
                auth_type: 0, auth_data: [0; 8],
            };
            let m = ChecksumMode::default();
            let pkt = encode_ipv4(&a, m, SRC, VRRP_MCAST_V4);
            proptest::prop_assert_eq!(parse_ipv4(&pkt, version, m).unwrap().advert, a);
        }
    }
}
