//! A server's address as the data path and the checks see it, and what a
//! DNS answer does to it: a pure record, with no resolver and no server in
//! it, so [`crate::server`] can hold one and [`crate::dns`] (the resolver
//! task) can feed it answers without either importing the other's insides.
//!
//! Calling contract: the owner creates a [`Record`] from the configured
//! address, then calls [`Record::on_answer`] with every answer and the time
//! it arrived; the returned [`Change`] is what to log, at most once per
//! change (a name that keeps failing is reported when it starts failing,
//! and again only when its held address expires).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Address;

/// What a server's address is right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The first answer has not come back yet (start-up).
    Pending,
    Resolved(IpAddr),
    /// Never resolved, or its last address outlived `hold_valid`.
    Unresolved(String),
}

/// One name's resolution and when it was last confirmed.
#[derive(Debug, Clone)]
pub struct Record {
    pub resolution: Resolution,
    last_valid: Option<Instant>,
    /// The name has failed since `last_valid` (logged once, not per query).
    failing: bool,
}

/// What an answer changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Resolved {
        from: Option<IpAddr>,
        to: IpAddr,
    },
    /// The name resolves again, to the address it kept.
    Recovered(IpAddr),
    /// The name stopped resolving; `address` is kept for `hold`.
    Holding {
        address: IpAddr,
        error: String,
    },
    /// ... and `hold` has passed: the address is dropped.
    Expired {
        address: IpAddr,
        error: String,
    },
    /// It has never resolved.
    Unresolvable(String),
}

impl Record {
    pub fn new(address: &Address) -> Record {
        Record {
            resolution: match address {
                Address::Ip(a) => Resolution::Resolved(a.ip()),
                Address::Name { .. } => Resolution::Pending,
            },
            last_valid: None,
            failing: false,
        }
    }

    /// Applies one answer (the addresses, or why there are none) at `now`.
    /// A server keeps its address while the name still lists it, so a name
    /// with several records does not hop between them.
    pub fn on_answer(
        &mut self,
        answer: Result<Vec<IpAddr>, String>,
        now: Instant,
        hold: Duration,
    ) -> Option<Change> {
        let current = match self.resolution {
            Resolution::Resolved(ip) => Some(ip),
            _ => None,
        };
        match answer {
            Ok(addresses) if !addresses.is_empty() => {
                self.last_valid = Some(now);
                let was_failing = std::mem::replace(&mut self.failing, false);
                match current {
                    Some(ip) if addresses.contains(&ip) => {
                        was_failing.then_some(Change::Recovered(ip))
                    }
                    _ => {
                        let to = addresses[0];
                        self.resolution = Resolution::Resolved(to);
                        Some(Change::Resolved { from: current, to })
                    }
                }
            }
            answer => {
                let error = match answer {
                    Err(e) => e,
                    Ok(_) => "no address in the answer".to_owned(),
                };
                let first_failure = !std::mem::replace(&mut self.failing, true);
                match (current, self.last_valid) {
                    (Some(address), Some(valid)) if now.duration_since(valid) >= hold => {
                        self.resolution = Resolution::Unresolved(error.clone());
                        Some(Change::Expired { address, error })
                    }
                    (Some(address), _) => {
                        first_failure.then_some(Change::Holding { address, error })
                    }
                    (None, _) => {
                        self.resolution = Resolution::Unresolved(error.clone());
                        first_failure.then_some(Change::Unresolvable(error))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(10);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn named() -> Record {
        Record::new(&Address::Name {
            host: "rabbit1".into(),
            port: 5672,
        })
    }

    #[test]
    fn an_ip_address_is_resolved_from_the_start() {
        let r = Record::new(&Address::Ip("10.0.0.1:5672".parse().unwrap()));
        assert_eq!(r.resolution, Resolution::Resolved(ip("10.0.0.1")));
        assert_eq!(named().resolution, Resolution::Pending);
    }

    #[test]
    fn first_answer_resolves_and_the_same_answer_changes_nothing() {
        let mut r = named();
        let t = Instant::now();
        assert_eq!(
            r.on_answer(Ok(vec![ip("10.0.0.1")]), t, HOLD),
            Some(Change::Resolved {
                from: None,
                to: ip("10.0.0.1")
            })
        );
        assert_eq!(r.on_answer(Ok(vec![ip("10.0.0.1")]), t, HOLD), None);
        assert_eq!(r.resolution, Resolution::Resolved(ip("10.0.0.1")));
    }

    #[test]
    fn a_new_address_is_followed() {
        let mut r = named();
        let t = Instant::now();
        r.on_answer(Ok(vec![ip("10.0.0.1")]), t, HOLD);
        assert_eq!(
            r.on_answer(Ok(vec![ip("10.0.0.2")]), t, HOLD),
            Some(Change::Resolved {
                from: Some(ip("10.0.0.1")),
                to: ip("10.0.0.2")
            })
        );
        assert_eq!(r.resolution, Resolution::Resolved(ip("10.0.0.2")));
    }

    #[test]
    fn the_current_address_is_kept_while_the_name_still_lists_it() {
        let mut r = named();
        let t = Instant::now();
        r.on_answer(Ok(vec![ip("10.0.0.2")]), t, HOLD);
        let answer = vec![ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(r.on_answer(Ok(answer), t, HOLD), None);
        assert_eq!(r.resolution, Resolution::Resolved(ip("10.0.0.2")));
    }

    #[test]
    fn a_failing_name_keeps_its_address_until_hold_valid_passes() {
        let mut r = named();
        let t = Instant::now();
        r.on_answer(Ok(vec![ip("10.0.0.1")]), t, HOLD);
        let nx = || Err("NXDOMAIN".to_owned());
        assert_eq!(
            r.on_answer(nx(), t + Duration::from_secs(1), HOLD),
            Some(Change::Holding {
                address: ip("10.0.0.1"),
                error: "NXDOMAIN".into()
            })
        );
        // Logged once, not at every failed query.
        assert_eq!(r.on_answer(nx(), t + Duration::from_secs(5), HOLD), None);
        assert_eq!(r.resolution, Resolution::Resolved(ip("10.0.0.1")));
        assert_eq!(
            r.on_answer(nx(), t + HOLD, HOLD),
            Some(Change::Expired {
                address: ip("10.0.0.1"),
                error: "NXDOMAIN".into()
            })
        );
        assert_eq!(r.resolution, Resolution::Unresolved("NXDOMAIN".into()));
        assert_eq!(r.on_answer(nx(), t + 2 * HOLD, HOLD), None);
    }

    #[test]
    fn a_name_that_resolves_again_within_the_hold_is_recovered() {
        let mut r = named();
        let t = Instant::now();
        r.on_answer(Ok(vec![ip("10.0.0.1")]), t, HOLD);
        r.on_answer(Err("timeout".into()), t, HOLD);
        assert_eq!(
            r.on_answer(Ok(vec![ip("10.0.0.1")]), t, HOLD),
            Some(Change::Recovered(ip("10.0.0.1")))
        );
        // The hold starts again from the new answer.
        assert_eq!(
            r.on_answer(
                Err("timeout".into()),
                t + HOLD - Duration::from_millis(1),
                HOLD
            ),
            Some(Change::Holding {
                address: ip("10.0.0.1"),
                error: "timeout".into()
            })
        );
    }

    #[test]
    fn a_name_that_never_resolved_is_unresolved_and_logged_once() {
        let mut r = named();
        let t = Instant::now();
        assert_eq!(
            r.on_answer(Err("NXDOMAIN".into()), t, HOLD),
            Some(Change::Unresolvable("NXDOMAIN".into()))
        );
        assert_eq!(r.on_answer(Err("NXDOMAIN".into()), t, HOLD), None);
        assert_eq!(r.on_answer(Ok(vec![]), t, HOLD), None);
        assert_eq!(
            r.resolution,
            Resolution::Unresolved("no address in the answer".into())
        );
        assert_eq!(
            r.on_answer(Ok(vec![ip("10.0.0.3")]), t, HOLD),
            Some(Change::Resolved {
                from: None,
                to: ip("10.0.0.3")
            })
        );
    }
}
