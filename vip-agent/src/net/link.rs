//! Interface state and virtual-address management over rtnetlink (no `ip` shell-outs).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlag};
use rtnetlink::Handle;

/// What we need to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub index: u32,
    pub mac: [u8; 6],
    /// Administratively up and operationally running (carrier).
    pub up: bool,
    /// IPv4 addresses with prefix length, in kernel order.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// Open a netlink connection (its driver task is spawned on the current runtime).
///
/// Each instance opens its own. The kernel keeps one dump in progress per netlink
/// socket and answers a second, concurrent dump request with EBUSY. An instance awaits
/// each of its requests in turn, so on its own socket no two dumps overlap. A
/// connection shared by several instances let their polls collide (issue 13).
pub fn connect() -> std::io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Whether a netlink error says "no such interface" (ENODEV), the only answer of a
/// link lookup that means the interface is missing.
pub fn is_missing_interface(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if code_is_missing_interface(m.raw_code()))
}

/// The same on the raw netlink error code (a negative errno).
fn code_is_missing_interface(code: i32) -> bool {
    code == -libc::ENODEV
}

/// Look up an interface by name; `Ok(None)` when it does not exist (ENODEV). Any other
/// failure is an error: it says nothing about the interface.
pub async fn iface(handle: &Handle, name: &str) -> anyhow::Result<Option<Iface>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let msg = match links.try_next().await {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(None),
        Err(e) if is_missing_interface(&e) => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context("link lookup")),
    };
    let index = msg.header.index;
    let flags = &msg.header.flags;
    let up = flags.contains(&LinkFlag::Up) && flags.contains(&LinkFlag::Running);
    let mut mac = [0u8; 6];
    for a in &msg.attributes {
        if let LinkAttribute::Address(b) = a {
            if b.len() == 6 {
                mac.copy_from_slice(b);
            }
        }
    }
    let addrs = ipv4_addrs(handle, index)
        .await
        .context("address dump")?
        .into_iter()
        .map(|(a, p, _)| (a, p))
        .collect();
    Ok(Some(Iface {
        index,
        mac,
        up,
        addrs,
    }))
}

fn msg_ipv4(m: &AddressMessage) -> Option<Ipv4Addr> {
    let mut found = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(IpAddr::V4(v)) => return Some(*v),
            AddressAttribute::Address(IpAddr::V4(v)) => found = Some(*v),
            _ => {}
        }
    }
    found
}

async fn ipv4_addrs(
    handle: &Handle,
    index: u32,
) -> anyhow::Result<Vec<(Ipv4Addr, u8, AddressMessage)>> {
    let mut out = Vec::new();
    let mut s = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(m) = s.try_next().await? {
        if m.header.index != index {
            continue;
        }
        if let Some(a) = msg_ipv4(&m) {
            out.push((a, m.header.prefix_len, m));
        }
    }
    Ok(out)
}

/// Add `addr/prefix` to interface `index` (idempotent).
pub async fn add_addr(
    handle: &Handle,
    index: u32,
    addr: Ipv4Addr,
    prefix: u8,
) -> anyhow::Result<()> {
    if ipv4_addrs(handle, index)
        .await?
        .iter()
        .any(|(a, _, _)| *a == addr)
    {
        return Ok(());
    }
    match handle
        .address()
        .add(index, IpAddr::V4(addr), prefix)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            if ipv4_addrs(handle, index)
                .await?
                .iter()
                .any(|(a, _, _)| *a == addr)
            {
                Ok(())
            } else {
                Err(e.into())
            }
        }
    }
}

/// Delete attempts for one removal before it is reported as failed.
const REMOVE_ATTEMPTS: u32 = 3;
/// Pause between attempts, for a transient failure (ENOBUFS, say) to pass.
const REMOVE_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Addresses a removal could not clear, and why.
#[derive(Debug)]
pub struct NotRemoved {
    /// Still on the interface (or not confirmed gone, when it could not be read).
    pub left: Vec<Ipv4Addr>,
    pub reason: String,
}

impl std::fmt::Display for NotRemoved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let left: Vec<String> = self.left.iter().map(|a| a.to_string()).collect();
        write!(
            f,
            "{} still on the interface: {}",
            left.join(", "),
            self.reason
        )
    }
}

/// Remove each of `addrs` from interface `index`, then read the interface again to
/// confirm. What is still there is tried again, `REMOVE_ATTEMPTS` times in all.
/// Returns the addresses that were present and are now gone.
pub async fn remove_verified(
    handle: &Handle,
    index: u32,
    addrs: &[Ipv4Addr],
) -> Result<Vec<Ipv4Addr>, NotRemoved> {
    let mut removed = Vec::new();
    let mut last_error = String::from("no answer");
    let mut left = addrs.to_vec();
    for attempt in 0..=REMOVE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(REMOVE_RETRY_PAUSE).await;
        }
        let present: Vec<_> = match ipv4_addrs(handle, index).await {
            Ok(all) => all
                .into_iter()
                .filter(|(a, _, _)| addrs.contains(a))
                .collect(),
            Err(e) => {
                last_error = format!("cannot read the addresses back: {e:#}");
                continue;
            }
        };
        left = present.iter().map(|(a, _, _)| *a).collect();
        if present.is_empty() {
            return Ok(removed);
        }
        if attempt == REMOVE_ATTEMPTS {
            break;
        }
        for (a, _, m) in present {
            match handle.address().del(m).execute().await {
                Ok(()) if !removed.contains(&a) => removed.push(a),
                Ok(()) => {}
                Err(e) => last_error = format!("delete {a}: {e}"),
            }
        }
    }
    Err(NotRemoved {
        left,
        reason: format!("{last_error} (after {REMOVE_ATTEMPTS} attempts)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enodev_means_the_interface_is_missing() {
        assert!(code_is_missing_interface(-libc::ENODEV));
        for errno in [
            libc::EBUSY,
            libc::ENOBUFS,
            libc::EINTR,
            libc::EPERM,
            libc::ENOMEM,
        ] {
            assert!(
                !code_is_missing_interface(-errno),
                "errno {errno} must not read as a missing interface"
            );
        }
        assert!(!is_missing_interface(&rtnetlink::Error::RequestFailed));
    }
}
