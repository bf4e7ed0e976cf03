//! Cursor pages over a list, as the providers' list calls serve them: the
//! items after (or, for Anthropic's `before_id`, before) the one a cursor
//! names, at most a page of them, and whether more follow. The list is
//! given in the order it is shown (newest first for batches); an empty
//! cursor is no cursor. What a cursor that names no item means differs by
//! provider (an empty page, an error), so that is left to the caller.

/// The page after the item whose id is `after` (from the start without
/// one), at most `limit` long, and whether more items follow it. `None`
/// when no item has the id `after`.
pub(crate) fn after<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
) -> Option<(&'a [T], bool)> {
    let start = match after.filter(|a| !a.is_empty()) {
        Some(a) => items.iter().position(|x| id(x) == a)? + 1,
        None => 0,
    };
    let rest = &items[start..];
    Some((&rest[..rest.len().min(limit)], rest.len() > limit))
}

/// The page just before the item whose id is `before`, at most `limit`
/// long, and whether more items precede it. `None` when no item has the
/// id `before`.
pub(crate) fn before<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    before: &str,
    limit: usize,
) -> Option<(&'a [T], bool)> {
    let end = items.iter().position(|x| id(x) == before)?;
    let rest = &items[..end];
    let start = rest.len().saturating_sub(limit);
    Some((&rest[start..], start > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        (1..=5).map(|i| format!("b{i}")).collect()
    }

    #[test]
    fn pages_after_a_cursor() {
        let ids = ids();
        assert_eq!(
            after(&ids, String::as_str, None, 2),
            Some((&ids[..2], true))
        );
        assert_eq!(
            after(&ids, String::as_str, Some(""), 2),
            Some((&ids[..2], true))
        );
        assert_eq!(
            after(&ids, String::as_str, Some("b2"), 2),
            Some((&ids[2..4], true))
        );
        assert_eq!(
            after(&ids, String::as_str, Some("b3"), 2),
            Some((&ids[3..], false))
        );
        assert_eq!(
            after(&ids, String::as_str, Some("b5"), 2),
            Some((&ids[5..], false))
        );
        assert_eq!(after(&ids, String::as_str, Some("b9"), 2), None);
        assert_eq!(
            after(&ids, String::as_str, None, 0),
            Some((&ids[..0], true))
        );
    }

    #[test]
    fn pages_before_a_cursor() {
        let ids = ids();
        assert_eq!(
            before(&ids, String::as_str, "b5", 2),
            Some((&ids[2..4], true))
        );
        assert_eq!(
            before(&ids, String::as_str, "b3", 2),
            Some((&ids[..2], false))
        );
        assert_eq!(
            before(&ids, String::as_str, "b1", 2),
            Some((&ids[..0], false))
        );
        assert_eq!(before(&ids, String::as_str, "b9", 2), None);
    }
}
