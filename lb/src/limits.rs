//! The open-files limit, sized from the configuration the way HAProxy
//! sizes `ulimit-n` from `maxconn`: two descriptors per session (client and
//! server; the splice relay's pipes come from a shared pool, see
//! [`crate::pipes`]), two per pooled pipe, one per listener, and a margin.
//! A default soft limit of 1024 would make a few hundred reconnecting
//! clients fail with EMFILE right after a failover.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::Config;

/// Descriptors per relayed session: the client's socket and the server's.
pub const FDS_PER_SESSION: u64 = 2;
/// Descriptors per pooled pipe.
const FDS_PER_PIPE: u64 = 2;
/// Checks, resolvers, admin API connections, the runtime's own (epoll,
/// eventfd, signal pipe), logs.
const FDS_MARGIN: u64 = 256;

/// Every frontend's `maxconn`, summed: the sessions the process may hold.
fn sessions(config: &Config) -> u64 {
    config.frontends.iter().map(|f| f.maxconn as u64).sum()
}

/// The pipe pool's bound: a quarter of the sessions, HAProxy's default
/// `maxpipes` (only sessions with a chunk in flight hold one; the others
/// copy when the pool is empty).
pub fn max_pipes(config: &Config) -> usize {
    sessions(config).div_ceil(4) as usize
}

/// What the configuration can hold open at once: `maxconn × 2 + maxpipes ×
/// 2 + listeners + margin`.
pub fn fds_needed(config: &Config) -> u64 {
    let listeners = config.frontends.len() as u64 + u64::from(config.admin.is_some());
    sessions(config) * FDS_PER_SESSION
        + max_pipes(config) as u64 * FDS_PER_PIPE
        + listeners
        + FDS_MARGIN
}

/// The outcome of [`raise_open_files`], for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenFiles {
    Enough(u64),
    Raised {
        from: u64,
        to: u64,
    },
    /// The hard limit is below what the configuration needs.
    Short {
        limit: u64,
        needed: u64,
    },
}

/// Raises the soft open-files limit towards `needed`, up to the hard limit.
pub fn raise_open_files(needed: u64) -> nix::Result<OpenFiles> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= needed {
        return Ok(OpenFiles::Enough(soft));
    }
    let to = needed.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, to, hard)?;
    if to < needed {
        Ok(OpenFiles::Short { limit: to, needed })
    } else {
        Ok(OpenFiles::Raised { from: soft, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_session_a_quarter_of_them_in_pipes_listeners_and_margin() {
        let config = crate::config::parse(
            "[[frontend]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nbackend = \"b\"\nmaxconn = 100\n\
             [[frontend]]\nname = \"c\"\nbind = \"127.0.0.1:2\"\nbackend = \"b\"\nmaxconn = 50\n\
             [admin]\nbind = \"127.0.0.1:3\"\n\
             [[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        assert_eq!(max_pipes(&config), 38); // 150 / 4, rounded up
        assert_eq!(fds_needed(&config), 150 * 2 + 38 * 2 + 3 + 256);
    }

    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(raise_open_files(1).unwrap(), OpenFiles::Enough(soft));
    }
}
