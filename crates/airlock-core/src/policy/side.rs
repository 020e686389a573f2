//! The two sides of invariant 12: how a condition holds when it can trigger a rule, and when it
//! must hold for a rule to allow.

use crate::glob::Glob;

/// Which side of invariant 12 a rule is read on: `deny`/`approve` rules trigger when any
/// reading matches; `allow` rules must hold for every reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Restrictive,
    Permissive,
}

/// How a body condition held: by what was read, or by the restrictive reading of what was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    No,
    Yes,
    Assumed(&'static str),
}

impl From<bool> for Hit {
    fn from(b: bool) -> Hit {
        if b { Hit::Yes } else { Hit::No }
    }
}

/// Restrictive: some value matches. Permissive: there is a value, and every one matches (a
/// server may take the first or the last of a repeated key).
pub(crate) fn values_ok<'a>(vals: impl Iterator<Item = &'a str>, g: &Glob, side: Side) -> bool {
    let mut seen = false;
    for v in vals {
        match (side, g.matches(v)) {
            (Side::Restrictive, true) => return true,
            (Side::Permissive, false) => return false,
            _ => seen = true,
        }
    }
    side == Side::Permissive && seen
}

/// What cannot be read satisfies restrictive rules and never permissive ones.
pub(crate) fn unread(side: Side, why: &'static str) -> Hit {
    match side {
        Side::Restrictive => Hit::Assumed(why),
        Side::Permissive => Hit::No,
    }
}

/// Restrictive: some item matches. Permissive: there is an item, and every one matches.
pub(crate) fn each<T>(items: &[T], side: Side, ok: impl Fn(&T) -> bool) -> Hit {
    match side {
        Side::Restrictive => items.iter().any(ok).into(),
        Side::Permissive => (!items.is_empty() && items.iter().all(ok)).into(),
    }
}
