//! Target `pg_codec`'s body: the database gateway's client-side framing (`airlock_pgwire`).

/// What a session reads off a client's bytes: startup packets, then typed messages.
#[derive(Debug, PartialEq, Eq)]
pub enum PgEvent {
    Startup(airlock_pgwire::Startup),
    Frame(airlock_pgwire::Frame),
    Error(airlock_pgwire::CodecError),
}

/// Reads `wire` as the database gateway's session does, the bytes arriving `step` at a time:
/// startup packets until one is neither SSLRequest nor GSSENCRequest (each of those is followed
/// by another, as after TLS), then typed messages up to `limit`, until an error or the end.
/// Each frame, encoded again, must be exactly the bytes it was read from.
pub fn pg_read(wire: &[u8], step: usize, limit: usize) -> Vec<PgEvent> {
    use airlock_pgwire::{Startup, decode, decode_startup};
    let mut buf = bytes::BytesMut::new();
    let mut fed = 0;
    let mut events = Vec::new();
    let mut in_startup = true;
    loop {
        let start = fed - buf.len();
        let got = if in_startup {
            decode_startup(&mut buf).map(|s| s.map(PgEvent::Startup))
        } else {
            decode(&mut buf, limit).map(|f| f.map(PgEvent::Frame))
        };
        match got {
            Ok(Some(ev)) => {
                let used = fed - buf.len() - start;
                match &ev {
                    PgEvent::Startup(Startup::Ssl | Startup::GssEnc) => {}
                    PgEvent::Startup(_) => in_startup = false,
                    PgEvent::Frame(f) => {
                        assert!(f.body.len() + 4 <= limit, "a frame above the limit");
                        let mut again = bytes::BytesMut::new();
                        f.encode(&mut again);
                        assert_eq!(&again[..], &wire[start..start + used], "re-encoding changed a frame");
                        pg_frame_fields(f);
                    }
                    PgEvent::Error(_) => {}
                }
                events.push(ev);
            }
            Ok(None) if fed == wire.len() => return events,
            Ok(None) => {
                let n = step.max(1).min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
            }
            Err(e) => {
                events.push(PgEvent::Error(e));
                return events;
            }
        }
    }
}

/// What the relay reads out of a frame: text fields never carry a NUL, a password never does.
fn pg_frame_fields(f: &airlock_pgwire::Frame) {
    use airlock_pgwire as pg;
    if let Ok(q) = pg::query_text(f) {
        assert!(!q.contains('\0'));
    }
    if let Ok((name, sql)) = pg::parse_message(f) {
        assert!(!name.contains('\0') && !sql.contains('\0'));
    }
    if let Ok((portal, stmt)) = pg::bind_statement(f) {
        assert!(!portal.contains('\0') && !stmt.contains('\0'));
    }
    if let Ok(pw) = pg::password(f) {
        assert!(!pw.contains(&0) && pw.len() < f.body.len());
    }
}

/// Target `pg_codec`: the database gateway's client-side framing (`airlock_pgwire`). The first
/// byte picks how the rest arrives (1 to 64 bytes at a time) and a small frame limit; the reading
/// must not depend on how the bytes were cut, and an ErrorResponse airlock builds from the
/// input's text (its own refusals quote agent SQL) must read back as one well-formed frame.
pub fn pg_codec(data: &[u8]) {
    use airlock_pgwire as pg;
    let Some((&knob, wire)) = data.split_first() else {
        return;
    };
    let whole = pg_read(wire, wire.len(), pg::MAX_CLIENT_MESSAGE);
    let cut = pg_read(wire, usize::from(knob % 64) + 1, pg::MAX_CLIENT_MESSAGE);
    assert_eq!(whole, cut, "the reading depends on how the bytes arrived");
    // A small limit refuses big frames as TooLarge, never reads them.
    let small = 16 + usize::from(knob);
    for ev in pg_read(wire, wire.len(), small) {
        if let PgEvent::Frame(f) = ev {
            assert!(f.body.len() + 4 <= small);
        }
    }
    let text = String::from_utf8_lossy(wire);
    let e = pg::error_response("42501", &text, Some(&text));
    let mut out = bytes::BytesMut::new();
    e.encode(&mut out);
    let back = pg::decode(&mut out, usize::MAX).map(|f| f.map(|f| f.tag));
    assert_eq!(back, Ok(Some(b'E')));
    assert!(out.is_empty(), "an ErrorResponse read back with bytes left over");
    let fields = e.body.iter().filter(|b| **b == 0).count();
    // Severity ×2, code, message, detail, and the terminator: interior NULs never add fields.
    assert_eq!(fields, 6, "an ErrorResponse has a field the input added");
}
