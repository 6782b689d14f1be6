//! Times at PostgreSQL's precision (microseconds): bounds that stay exact when a caller's time
//! is finer than what is stored.

use time::OffsetDateTime;

/// `t` rounded down to whole microseconds, PostgreSQL's precision. (Binding `t` as it is would
/// truncate toward 2000-01-01, which rounds earlier times up.)
pub(crate) fn floor_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// `t` rounded up to whole microseconds.
pub(crate) fn ceil_micros(t: OffsetDateTime) -> OffsetDateTime {
    let floor = floor_micros(t);
    if floor == t {
        t
    } else {
        floor + time::Duration::microseconds(1)
    }
}
