//! The open-files limit, sized from the configuration as HAProxy sizes its
//! `ulimit-n` from `maxconn`: a session holds six descriptors (client,
//! server, and the two pipes of the splice relay), and a default soft limit
//! of 1024 would make a few hundred reconnecting clients fail with EMFILE
//! right after a failover.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::Config;

/// Descriptors per relayed session: client, server, two pipes of two.
const FDS_PER_SESSION: u64 = 6;
/// Listeners, checks, resolvers, the admin API, logs.
const FDS_SPARE: u64 = 256;

/// What the configuration can hold open at once.
pub fn fds_needed(config: &Config) -> u64 {
    let sessions: u64 = config.frontends.iter().map(|f| f.maxconn as u64).sum();
    sessions * FDS_PER_SESSION + FDS_SPARE
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
    fn six_descriptors_per_session_of_every_frontend_plus_spare() {
        let config = crate::config::parse(
            "[[frontend]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nbackend = \"b\"\nmaxconn = 100\n\
             [[frontend]]\nname = \"c\"\nbind = \"127.0.0.1:2\"\nbackend = \"b\"\nmaxconn = 50\n\
             [[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        assert_eq!(fds_needed(&config), 150 * 6 + 256);
    }

    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(raise_open_files(1).unwrap(), OpenFiles::Enough(soft));
    }
}
