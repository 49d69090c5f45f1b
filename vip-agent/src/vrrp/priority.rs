//! The priority an instance advertises, from its configured priority and
//! its trackers (keepalived's weight semantics), sans IO.
//!
//! Calling contract: the shell calls [`effective_priority`] whenever a
//! tracker changes and hands the result to the machine as
//! `Event::Track { priority, fault }`; the machine never sees weights.

/// keepalived's effective priority: `base` + Σ(weight > 0 of trackers up) +
/// Σ(weight < 0 of trackers down), clamped to 1..=254, and whether the
/// instance is in fault (any weight-0 tracker down).
///
/// `tracks` holds `(weight, up)` per tracker. The clamp keeps a tracked
/// router from ever claiming to be the address owner (255) or resigning
/// (0) by arithmetic alone; an owner (`base` 255) is not adjusted, as in
/// keepalived, because it holds the addresses by definition.
pub fn effective_priority(base: u8, tracks: &[(i32, bool)]) -> (u8, bool) {
    let mut fault = false;
    let mut priority = i32::from(base);
    for &(weight, up) in tracks {
        match (weight, up) {
            (0, false) => fault = true,
            (w, true) if w > 0 => priority += w,
            (w, false) if w < 0 => priority += w,
            _ => {}
        }
    }
    if base == 255 {
        return (255, fault);
    }
    (priority.clamp(1, 254) as u8, fault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keepalived_weight_semantics() {
        assert_eq!(effective_priority(100, &[]), (100, false));
        assert_eq!(effective_priority(100, &[(0, false)]), (100, true));
        assert_eq!(effective_priority(100, &[(0, true)]), (100, false));
        assert_eq!(effective_priority(100, &[(-60, false)]), (40, false));
        assert_eq!(effective_priority(100, &[(-60, true)]), (100, false));
        assert_eq!(effective_priority(100, &[(20, true)]), (120, false));
        assert_eq!(effective_priority(100, &[(20, false)]), (100, false));
        assert_eq!(effective_priority(100, &[(-200, false)]), (1, false));
        assert_eq!(effective_priority(250, &[(20, true)]), (254, false));
        assert_eq!(effective_priority(255, &[(-60, false)]), (255, false));
    }

    proptest! {
        /// Whatever the trackers say, a non-owner advertises 1..=254 and an
        /// owner 255, and fault means exactly "a weight-0 tracker is down".
        #[test]
        fn priority_stays_in_range_and_fault_is_a_weight_0_tracker_down(
            base in 1u8..=255,
            tracks in proptest::collection::vec((-253i32..=253, any::<bool>()), 0..8),
        ) {
            let (priority, fault) = effective_priority(base, &tracks);
            if base == 255 {
                prop_assert_eq!(priority, 255);
            } else {
                prop_assert!((1..=254).contains(&priority));
            }
            prop_assert_eq!(fault, tracks.iter().any(|&(w, up)| w == 0 && !up));
        }
    }
}
