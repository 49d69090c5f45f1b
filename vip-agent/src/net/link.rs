//! Interface state and virtual-address management over rtnetlink (no `ip` shell-outs).

use std::net::{IpAddr, Ipv4Addr};

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
pub fn connect() -> std::io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Look up an interface by name; `Ok(None)` when it does not exist.
pub async fn iface(handle: &Handle, name: &str) -> anyhow::Result<Option<Iface>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let msg = match links.try_next().await {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(None),
        // ENODEV comes back as a netlink error.
        Err(rtnetlink::Error::NetlinkError(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
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
        .await?
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

/// Remove `addr` from interface `index` (idempotent). Returns whether it was present.
pub async fn del_addr(handle: &Handle, index: u32, addr: Ipv4Addr) -> anyhow::Result<bool> {
    let mut removed = false;
    for (a, _, m) in ipv4_addrs(handle, index).await? {
        if a == addr {
            handle.address().del(m).execute().await?;
            removed = true;
        }
    }
    Ok(removed)
}
