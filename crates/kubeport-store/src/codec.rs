//! On-disk encodings of records and events.
//!
//! Both are small fixed headers followed by the opaque value bytes, so decoding never has to
//! parse the value and encoding is a single allocation.

use bytes::Bytes;

use crate::{Event, EventKind, Record, StoreError};

const RECORD_HEADER: usize = 16;

/// Encodes the stored form of a current record: `create_revision`, `mod_revision`, value.
pub(crate) fn encode_record(create_revision: u64, mod_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_record(key: &str, raw: &[u8]) -> Result<Record, StoreError> {
    if raw.len() < RECORD_HEADER {
        return Err(corrupt(format!("record {key:?} is truncated")));
    }
    Ok(Record {
        key: key.to_string(),
        create_revision: read_u64(raw, 0),
        mod_revision: read_u64(raw, 8),
        value: Bytes::copy_from_slice(&raw[RECORD_HEADER..]),
    })
}

// How an event stores its previous value. A deletion's previous value is the value it reports,
// so it is not written twice.
const PREV_NONE: u8 = 0;
const PREV_INLINE: u8 = 1;
const PREV_SAME_AS_VALUE: u8 = 2;

fn kind_tag(kind: EventKind) -> u8 {
    match kind {
        EventKind::Created => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    }
}

/// Encodes an event (its revision is the table key):
/// kind u8, create_revision u64, key length u32, key, prev tag u8,
/// [prev length u32, prev], value.
pub(crate) fn encode_event(event: &Event) -> Vec<u8> {
    let prev_tag = match (&event.prev_value, event.kind) {
        (None, _) => PREV_NONE,
        (Some(_), EventKind::Deleted) => PREV_SAME_AS_VALUE,
        (Some(_), _) => PREV_INLINE,
    };
    let prev_len = match (prev_tag, &event.prev_value) {
        (PREV_INLINE, Some(prev)) => 4 + prev.len(),
        _ => 0,
    };
    let mut out =
        Vec::with_capacity(1 + 8 + 4 + event.key.len() + 1 + prev_len + event.value.len());
    out.push(kind_tag(event.kind));
    out.extend_from_slice(&event.create_revision.to_le_bytes());
    out.extend_from_slice(&(event.key.len() as u32).to_le_bytes());
    out.extend_from_slice(event.key.as_bytes());
    out.push(prev_tag);
    if let (PREV_INLINE, Some(prev)) = (prev_tag, &event.prev_value) {
        out.extend_from_slice(&(prev.len() as u32).to_le_bytes());
        out.extend_from_slice(prev);
    }
    out.extend_from_slice(&event.value);
    out
}

pub(crate) fn decode_event(revision: u64, raw: &[u8]) -> Result<Event, StoreError> {
    let bad = || corrupt(format!("event at revision {revision} is malformed"));
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<std::ops::Range<usize>, StoreError> {
        let end = at
            .checked_add(n)
            .filter(|end| *end <= raw.len())
            .ok_or_else(bad)?;
        let range = *at..end;
        *at = end;
        Ok(range)
    };
    let kind = match raw[take(&mut at, 1)?][0] {
        0 => EventKind::Created,
        1 => EventKind::Modified,
        2 => EventKind::Deleted,
        _ => return Err(bad()),
    };
    let create_revision = read_u64(raw, take(&mut at, 8)?.start);
    let key_len = read_u32(raw, take(&mut at, 4)?.start) as usize;
    let key = std::str::from_utf8(&raw[take(&mut at, key_len)?])
        .map_err(|_| bad())?
        .to_string();
    let prev_tag = raw[take(&mut at, 1)?][0];
    let inline_prev = match prev_tag {
        PREV_INLINE => {
            let len = read_u32(raw, take(&mut at, 4)?.start) as usize;
            Some(Bytes::copy_from_slice(&raw[take(&mut at, len)?]))
        }
        PREV_NONE | PREV_SAME_AS_VALUE => None,
        _ => return Err(bad()),
    };
    let value = Bytes::copy_from_slice(&raw[at..]);
    let prev_value = match prev_tag {
        PREV_SAME_AS_VALUE => Some(value.clone()),
        _ => inline_prev,
    };
    Ok(Event {
        revision,
        kind,
        key,
        value,
        prev_value,
        create_revision,
    })
}

fn read_u64(raw: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(buf)
}

fn read_u32(raw: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&raw[at..at + 4]);
    u32::from_le_bytes(buf)
}

fn corrupt(what: String) -> StoreError {
    StoreError::Io(format!("corrupt store: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(event: Event) {
        let raw = encode_event(&event);
        assert_eq!(decode_event(event.revision, &raw).unwrap(), event);
    }

    #[test]
    fn events_roundtrip_for_every_kind() {
        roundtrip(Event {
            revision: 1,
            kind: EventKind::Created,
            key: "/registry/services/default/web".into(),
            value: Bytes::from_static(b"{\"a\":1}"),
            prev_value: None,
            create_revision: 1,
        });
        roundtrip(Event {
            revision: 7,
            kind: EventKind::Modified,
            key: "k".into(),
            value: Bytes::from_static(b"new"),
            prev_value: Some(Bytes::from_static(b"older value")),
            create_revision: 3,
        });
        roundtrip(Event {
            revision: 9,
            kind: EventKind::Deleted,
            key: "k".into(),
            value: Bytes::from_static(b"last"),
            prev_value: Some(Bytes::from_static(b"last")),
            create_revision: 3,
        });
        roundtrip(Event {
            revision: 10,
            kind: EventKind::Modified,
            key: String::new(),
            value: Bytes::new(),
            prev_value: Some(Bytes::new()),
            create_revision: 10,
        });
    }

    #[test]
    fn truncated_event_is_reported_not_panicking() {
        let raw = encode_event(&Event {
            revision: 4,
            kind: EventKind::Modified,
            key: "some/key".into(),
            value: Bytes::from_static(b"v"),
            prev_value: Some(Bytes::from_static(b"prev")),
            create_revision: 2,
        });
        // The value is the single trailing byte; any cut before it falls inside the header.
        for cut in 0..raw.len() - 1 {
            assert!(decode_event(4, &raw[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn records_roundtrip() {
        let raw = encode_record(3, 8, b"payload");
        let record = decode_record("k", &raw).unwrap();
        assert_eq!(record.create_revision, 3);
        assert_eq!(record.mod_revision, 8);
        assert_eq!(record.value, Bytes::from_static(b"payload"));
        assert!(decode_record("k", &raw[..10]).is_err());
    }
}
