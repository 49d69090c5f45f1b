//! Zero-downtime binary upgrade by listening-socket handover.
//!
//! The running (old) process serves a unix socket (`--upgrade-socket`).  A
//! new process started with `--upgrade-from PATH`:
//!
//! 1. connects; the old process sends one message: a JSON list of the
//!    configured binds and, as `SCM_RIGHTS`, a duplicate of each listening
//!    socket (the same kernel socket, so its accept queue is shared and no
//!    client is ever refused);
//! 2. starts with those sockets for frontends whose bind is unchanged
//!    (others it binds itself) and, once serving, writes `ready\n`;
//! 3. the old process then closes its listeners and its upgrade socket,
//!    serves its established sessions until they end (or until
//!    `global.hard_stop_after`), and exits.
//!
//! If the new process dies or fails before `ready`, the old one logs that
//! the upgrade was aborted and keeps serving as if nothing happened.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// How long the old process waits for the new one to say `ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many listeners are handed over.
const MAX_FDS: usize = 64;

/// The old process's side of one handover: send the sockets, wait for
/// `ready`.  Blocking; run it off the async runtime.  Ok(true) when the
/// new process took over.
pub fn hand_over(stream: UnixStream, sockets: &[(SocketAddr, RawFd)]) -> anyhow::Result<bool> {
    if sockets.len() > MAX_FDS {
        bail!(
            "{} listeners: at most {MAX_FDS} can be handed over",
            sockets.len()
        );
    }
    let binds: Vec<String> = sockets.iter().map(|(b, _)| b.to_string()).collect();
    let payload = serde_json::to_vec(&serde_json::json!({ "binds": binds }))?;
    let fds: Vec<RawFd> = sockets.iter().map(|(_, fd)| *fd).collect();
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&payload)],
        if fds.is_empty() { &[] } else { &cmsgs },
        MsgFlags::empty(),
        None,
    )
    .context("sending the listening sockets")?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line.trim() == "ready")
}

/// The new process's side: the sockets received, by configured bind, and
/// the connection on which to say `ready`.
pub struct Handover {
    pub sockets: Vec<(SocketAddr, std::net::TcpListener)>,
    stream: UnixStream,
}

impl Handover {
    pub fn receive(path: &Path) -> anyhow::Result<Handover> {
        let stream = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot reach the running warren-lb at {} (is it started with --upgrade-socket?)",
                path.display()
            )
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (bytes, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .context("receiving the listening sockets")?;
            let mut fds = Vec::new();
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(r) = c {
                    // SAFETY: SCM_RIGHTS gives this process new descriptors
                    // that nothing else owns.
                    fds.extend(r.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
            (msg.bytes, fds)
        };
        let message: serde_json::Value =
            serde_json::from_slice(&buf[..bytes]).context("the handover message")?;
        let binds: Vec<SocketAddr> = message["binds"]
            .as_array()
            .context("the handover message has no binds")?
            .iter()
            .map(|b| b.as_str().unwrap_or_default().parse())
            .collect::<Result<_, _>>()
            .context("a bind in the handover message")?;
        if binds.len() != fds.len() {
            bail!("{} binds but {} sockets received", binds.len(), fds.len());
        }
        let sockets = binds
            .into_iter()
            .zip(fds)
            .map(|(b, fd)| (b, std::net::TcpListener::from(fd)))
            .collect();
        Ok(Handover { sockets, stream })
    }

    /// Tells the old process to stop accepting.
    pub fn ready(mut self) -> std::io::Result<()> {
        self.stream.write_all(b"ready\n")?;
        self.stream.flush()
    }
}
