//! Is the instance's interface usable? Judged from netlink reads, sans-IO.
//!
//! Only a definite reading changes the verdict. Usable means the interface exists, is
//! up and running, and has an IPv4 address. Unusable means it is missing (ENODEV), down,
//! or without an address. A read that fails (EBUSY, ENOBUFS, a broken netlink socket)
//! says nothing about the link. It leaves the verdict as it was, and the next poll reads
//! again. Treating it as FAULT made a healthy master resign with its link up (issue 13).

/// What one read of the interface said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Usable,
    Unusable,
    /// The read itself failed: no information about the link.
    Failed,
}

/// The verdict across reads, and how many reads in a row have failed (for logging).
#[derive(Debug, Default)]
pub struct LinkWatch {
    usable: Option<bool>,
    failed_reads: u32,
}

impl LinkWatch {
    /// The verdict; `None` until the first definite reading.
    pub fn usable(&self) -> Option<bool> {
        self.usable
    }

    /// Reads that failed since the last definite one.
    pub fn failed_reads(&self) -> u32 {
        self.failed_reads
    }

    /// Record one reading. Returns the new verdict when it changed (the first definite
    /// reading counts as a change); a failed read never changes it.
    pub fn observe(&mut self, reading: Reading) -> Option<bool> {
        let now = match reading {
            Reading::Failed => {
                self.failed_reads = self.failed_reads.saturating_add(1);
                return None;
            }
            Reading::Usable => true,
            Reading::Unusable => false,
        };
        self.failed_reads = 0;
        if self.usable == Some(now) {
            return None;
        }
        self.usable = Some(now);
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading() -> impl Strategy<Value = Reading> {
        prop_oneof![
            Just(Reading::Usable),
            Just(Reading::Unusable),
            Just(Reading::Failed),
        ]
    }

    #[test]
    fn a_failed_read_keeps_a_usable_link_usable() {
        let mut w = LinkWatch::default();
        assert_eq!(w.observe(Reading::Usable), Some(true));
        for n in 1..=5 {
            assert_eq!(w.observe(Reading::Failed), None);
            assert_eq!(w.usable(), Some(true));
            assert_eq!(w.failed_reads(), n);
        }
        assert_eq!(w.observe(Reading::Usable), None, "no change to report");
        assert_eq!(w.failed_reads(), 0);
    }

    #[test]
    fn failed_reads_before_the_first_definite_one_leave_it_unknown() {
        let mut w = LinkWatch::default();
        assert_eq!(w.observe(Reading::Failed), None);
        assert_eq!(w.usable(), None);
        assert_eq!(w.observe(Reading::Unusable), Some(false));
    }

    proptest! {
        /// Model: the verdict is the last definite reading; a change is reported exactly
        /// when a definite reading differs from the verdict before it; failed reads are
        /// counted since the last definite reading.
        #[test]
        fn verdict_is_the_last_definite_reading(readings in proptest::collection::vec(reading(), 0..64)) {
            let mut w = LinkWatch::default();
            let mut model: Option<bool> = None;
            let mut failures = 0u32;
            for r in readings {
                let before = model;
                let change = w.observe(r);
                match r {
                    Reading::Failed => failures += 1,
                    Reading::Usable => { model = Some(true); failures = 0 }
                    Reading::Unusable => { model = Some(false); failures = 0 }
                }
                prop_assert_eq!(w.usable(), model, "after {:?}", r);
                prop_assert_eq!(w.failed_reads(), failures);
                let expected = if model != before { model } else { None };
                prop_assert_eq!(change, expected, "after {:?} from {:?}", r, before);
                if r == Reading::Failed {
                    prop_assert_eq!(change, None, "a failed read never changes the verdict");
                }
            }
        }
    }
}
