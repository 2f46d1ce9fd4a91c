//! [`KindSet`]: a small set of failure kinds, as a bitset over
//! [`Kind::ALL`]. A route's `fallback_on` is one; looking a kind up is a
//! shift and a mask, done once per failed attempt.

use std::fmt;

use crate::taxonomy::Kind;

/// A set of [`Kind`]s. `Copy`, one word.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KindSet(u32);

// One bit per kind must fit the word.
const _: () = assert!(Kind::ALL.len() <= 32);

fn bit(kind: Kind) -> u32 {
    // `Kind::ALL` lists every kind, so the position is always found.
    let index = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    1 << index
}

impl KindSet {
    /// No kinds.
    pub const fn empty() -> KindSet {
        KindSet(0)
    }

    /// The set of the kinds listed.
    pub fn of(kinds: &[Kind]) -> KindSet {
        kinds.iter().copied().collect()
    }

    /// The set of the labels that parse with [`Kind::parse`] (validation
    /// has refused the others).
    pub fn parse<S: AsRef<str>>(labels: &[S]) -> KindSet {
        labels
            .iter()
            .filter_map(|l| Kind::parse(l.as_ref()))
            .collect()
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & bit(kind) != 0
    }

    pub fn insert(&mut self, kind: Kind) {
        self.0 |= bit(kind);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`Kind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut set = KindSet::empty();
        for kind in iter {
            set.insert(kind);
        }
        set
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Kind::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_exact_for_every_kind() {
        for kind in Kind::ALL {
            let set = KindSet::of(&[kind]);
            let members: Vec<Kind> = set.iter().collect();
            assert_eq!(members, [kind]);
            for other in Kind::ALL {
                assert_eq!(set.contains(other), other == kind, "{kind} vs {other}");
            }
        }
        assert!(KindSet::empty().is_empty());
        assert_eq!(KindSet::of(&Kind::ALL).iter().count(), Kind::ALL.len());
    }

    #[test]
    fn parse_keeps_known_labels_in_kind_order() {
        let set = KindSet::parse(&["timeout", "nonsense", "rate_limited", "timeout"]);
        assert_eq!(format!("{set:?}"), r#"{"rate_limited", "timeout"}"#);
        assert_eq!(set, KindSet::of(&[Kind::RateLimited, Kind::Timeout]));
    }
}
