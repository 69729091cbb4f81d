//! W3C Trace Context: what a valid `traceparent` header says (the caller's
//! trace, its span and whether it samples), so one request can be followed
//! from the dashboard through the gateway's logs, audit and spans. Anything
//! malformed is ignored, never echoed (it is caller input).

use http::HeaderMap;

/// The header W3C Trace Context (Level 1, §3.2) defines.
pub(crate) const TRACEPARENT: &str = "traceparent";

/// A valid `traceparent`: the trace id as written (lowercase hex, for the
/// logs and the audit), the rest as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceParent {
    /// 32 hex digits, not all zeros.
    pub(crate) trace_id: String,
    /// The caller's span, from its 16 hex digits (not all zeros).
    pub(crate) parent_id: u64,
    /// The trace flags; bit 0 says the caller samples (records) this trace.
    pub(crate) flags: u8,
}

/// The request's `traceparent`, when there is exactly one and it is valid:
/// `version-traceid-parentid-flags`, lowercase hex, version not `ff`, ids not
/// all zeros. Version `00` has exactly those four fields; a later version may
/// append more (§3.2.4), which are ignored.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?;
    let (head, rest) = (text.get(..55)?, &text[55..]);
    let mut fields = head.split('-');
    let (version, trace, parent, flags) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2)
        && fields.next().is_none()
        && match version {
            "00" => rest.is_empty(),
            _ => rest.is_empty() || rest.starts_with('-'),
        };
    valid.then(|| TraceParent {
        trace_id: trace.to_owned(),
        parent_id: u64::from_str_radix(parent, 16).unwrap_or_default(),
        flags: u8::from_str_radix(flags, 16).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(TRACEPARENT, v.parse().unwrap());
        }
        traceparent(&headers).map(|t| t.trace_id)
    }

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_gives_its_trace_id() {
        assert_eq!(of(&[GOOD]).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        // A later version may carry more fields after the four it shares with 00.
        assert!(of(&["01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"]).is_some());
    }

    #[test]
    fn a_valid_traceparent_gives_the_callers_span_and_flags() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, GOOD.parse().unwrap());
        let parent = traceparent(&headers).unwrap();
        assert_eq!(parent.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(parent.flags, 1);
        headers.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
                .parse()
                .unwrap(),
        );
        assert_eq!(traceparent(&headers).unwrap().flags, 0, "not sampled");
    }

    #[test]
    fn a_malformed_or_repeated_traceparent_is_ignored() {
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(of(&[bad]), None, "{bad:?}");
        }
        assert_eq!(of(&[GOOD, GOOD]), None, "two traceparent headers");
    }
}
