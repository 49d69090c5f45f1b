//! Server selection: which eligible server gets the next session.
//!
//! Pure: it sees a snapshot of the servers and returns an index, so every
//! rule (primaries before backups, first backup only unless `allbackups`,
//! weights, `maxconn`) is unit-tested without sockets.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::config::{Balance, Role};

/// What selection needs to know about one server right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub role: Role,
    /// Up, failed back (if a primary) and not drained by an operator.
    pub eligible: bool,
    /// Has a free slot under its `maxconn`.
    pub has_slot: bool,
    pub weight: u32,
    pub sessions: usize,
}

/// Picks a server for a new session, or `None` when no server can take it.
///
/// `skip` lists servers already tried for this session (redispatch);
/// `turn` is a per-backend counter that round-robin advances.
pub fn pick(
    balance: Balance,
    allbackups: bool,
    servers: &[Candidate],
    skip: &[usize],
    turn: usize,
    client: IpAddr,
) -> Option<usize> {
    let usable =
        |i: usize, c: &Candidate| c.eligible && c.has_slot && c.weight > 0 && !skip.contains(&i);
    let primaries: Vec<usize> = servers
        .iter()
        .enumerate()
        .filter(|(i, c)| c.role == Role::Primary && usable(*i, c))
        .map(|(i, _)| i)
        .collect();
    // Backups only count when no primary is eligible at all, not merely
    // full or already tried: HAProxy's rule, so a busy primary does not spill
    // clients onto a backup node.
    let any_primary_eligible = servers
        .iter()
        .any(|c| c.role == Role::Primary && c.eligible && c.weight > 0);
    let pool: Vec<usize> = if !primaries.is_empty() {
        primaries
    } else if any_primary_eligible {
        Vec::new()
    } else {
        let mut backups = servers
            .iter()
            .enumerate()
            .filter(|(i, c)| c.role == Role::Backup && usable(*i, c))
            .map(|(i, _)| i);
        if allbackups {
            backups.collect()
        } else {
            backups.next().into_iter().collect()
        }
    };
    if pool.is_empty() {
        return None;
    }
    match balance {
        Balance::First => pool.first().copied(),
        Balance::RoundRobin => by_weight(&pool, servers, turn),
        Balance::Source => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            client.hash(&mut h);
            by_weight(&pool, servers, h.finish() as usize)
        }
        Balance::LeastConn => pool.iter().copied().min_by(|&a, &b| {
            // sessions/weight, compared without division
            let (sa, wa) = (servers[a].sessions as u64, servers[a].weight as u64);
            let (sb, wb) = (servers[b].sessions as u64, servers[b].weight as u64);
            (sa * wb).cmp(&(sb * wa))
        }),
    }
}

/// The server that owns position `n` when each server holds `weight` slots.
fn by_weight(pool: &[usize], servers: &[Candidate], n: usize) -> Option<usize> {
    let total: usize = pool.iter().map(|&i| servers[i].weight as usize).sum();
    let mut n = n % total;
    for &i in pool {
        let w = servers[i].weight as usize;
        if n < w {
            return Some(i);
        }
        n -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn up(role: Role) -> Candidate {
        Candidate {
            role,
            eligible: true,
            has_slot: true,
            weight: 1,
            sessions: 0,
        }
    }
    fn down(role: Role) -> Candidate {
        Candidate {
            eligible: false,
            ..up(role)
        }
    }
    use Role::{Backup as B, Primary as P};

    #[test]
    fn first_takes_the_first_eligible_primary() {
        let s = [down(P), up(P), up(P), up(B)];
        assert_eq!(pick(Balance::First, false, &s, &[], 0, CLIENT), Some(1));
    }

    #[test]
    fn backups_only_when_no_primary_is_eligible() {
        let s = [up(P), up(B)];
        for turn in 0..4 {
            assert_eq!(
                pick(Balance::RoundRobin, false, &s, &[], turn, CLIENT),
                Some(0)
            );
        }
        let s = [down(P), up(B), up(B)];
        assert_eq!(
            pick(Balance::RoundRobin, false, &s, &[], 1, CLIENT),
            Some(1),
            "first backup only"
        );
        assert_eq!(
            pick(Balance::RoundRobin, true, &s, &[], 1, CLIENT),
            Some(2),
            "allbackups spreads"
        );
    }

    #[test]
    fn full_or_tried_primary_does_not_spill_to_backups() {
        let full = Candidate {
            has_slot: false,
            ..up(P)
        };
        assert_eq!(
            pick(Balance::First, false, &[full, up(B)], &[], 0, CLIENT),
            None
        );
        assert_eq!(
            pick(Balance::First, false, &[up(P), up(B)], &[0], 0, CLIENT),
            None
        );
    }

    #[test]
    fn redispatch_skips_tried_servers() {
        let s = [up(P), up(P), up(P)];
        assert_eq!(pick(Balance::First, false, &s, &[0], 0, CLIENT), Some(1));
        assert_eq!(pick(Balance::First, false, &s, &[0, 1, 2], 0, CLIENT), None);
    }

    #[test]
    fn roundrobin_honours_weights() {
        let mut s = [up(P), up(P)];
        s[1].weight = 3;
        let picks: Vec<_> = (0..8)
            .map(|t| pick(Balance::RoundRobin, false, &s, &[], t, CLIENT).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 6);
        s[0].weight = 0;
        assert!(
            (0..4).all(|t| pick(Balance::RoundRobin, false, &s, &[], t, CLIENT) == Some(1)),
            "weight 0 takes nothing"
        );
    }

    #[test]
    fn leastconn_prefers_fewest_sessions_per_weight() {
        let mut s = [up(P), up(P), up(P)];
        s[0].sessions = 5;
        s[1].sessions = 2;
        s[2].sessions = 3;
        assert_eq!(pick(Balance::LeastConn, false, &s, &[], 0, CLIENT), Some(1));
        s[2].weight = 2; // 3/2 < 2/1
        assert_eq!(pick(Balance::LeastConn, false, &s, &[], 0, CLIENT), Some(2));
    }

    #[test]
    fn source_is_sticky_per_client() {
        let s = [up(P), up(P), up(P)];
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let first = pick(Balance::Source, false, &s, &[], 0, a);
        assert!((1..10).all(|t| pick(Balance::Source, false, &s, &[], t, a) == first));
    }

    #[test]
    fn nothing_eligible_is_none() {
        assert_eq!(
            pick(Balance::First, true, &[down(P), down(B)], &[], 0, CLIENT),
            None
        );
        assert_eq!(pick(Balance::First, true, &[], &[], 0, CLIENT), None);
    }
}
