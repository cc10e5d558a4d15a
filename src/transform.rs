//! `konflux-telemetry transform`: objects as NDJSON in, events as NDJSON out, then the
//! heartbeat. A drop-in for the old bridge's `tekton-to-segment.sh`.
//!
//! It streams: one line is in memory at a time. A line that is not an object the model can
//! read is skipped with one warning naming its line number and why (never its content). A
//! `List` line whose items cannot all be read gets one warning too, however many items
//! were skipped: how many, and why the first one was.

use crate::events::{self, ClusterIdentity, Decoded, Timestamp};
use crate::{Error, Result};
use std::io::{BufRead, Write};

/// What a run read, wrote and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub objects: u64,
    pub events: u64,
    /// Lines skipped, whole or in part (a `List` with items that could not be read).
    pub skipped: u64,
    /// Items of `List` lines skipped.
    pub skipped_items: u64,
}

/// Reads `input` to its end, writes events to `output` and warnings to `warn`.
/// Errors only on I/O; malformed lines are counted in [`Summary::skipped`].
pub fn run(
    input: impl BufRead,
    mut output: impl Write,
    mut warn: impl Write,
    identity: &ClusterIdentity,
    heartbeat_at: Option<Timestamp>,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut input = input;
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|source| Error::Io {
                context: "reading input",
                source,
            })?;
        if n == 0 {
            break;
        }
        summary.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut tally = Tally::default();
        let mut take = |item: Decoded| -> Result<()> {
            tally.items += 1;
            match item {
                Decoded::Object(object) => {
                    summary.objects += 1;
                    for event in events::events_of(&object, identity) {
                        write_event(&mut output, &event)?;
                        summary.events += 1;
                    }
                }
                Decoded::NoEvents => summary.objects += 1,
                Decoded::Skipped(e) => {
                    tally.skipped += 1;
                    tally.first.get_or_insert(e);
                }
            }
            Ok(())
        };
        let whole = if is_list(&line) {
            for_each_list_item(&line, &mut take)?
        } else {
            match events::decode(&line) {
                Ok(items) => items.into_iter().try_for_each(&mut take).map(|()| None)?,
                Err(e) => Some(e),
            }
        };
        if let Some(e) = whole {
            summary.skipped += 1;
            warn_line(&mut warn, summary.lines, &e)?;
        } else if let Some(e) = tally.first {
            summary.skipped += 1;
            if tally.items == 1 {
                warn_line(&mut warn, summary.lines, &e)?;
            } else {
                summary.skipped_items += tally.skipped;
                writeln!(
                    warn,
                    "warning: line {}: {} of {} list items skipped, the first: {e}",
                    summary.lines, tally.skipped, tally.items
                )
                .map_err(|source| Error::Io {
                    context: "writing warnings",
                    source,
                })?;
            }
        }
    }
    let now = heartbeat_at.unwrap_or_else(Timestamp::now);
    write_event(&mut output, &crate::heartbeat::event(identity, now))?;
    summary.events += 1;
    output.flush().map_err(|source| Error::Io {
        context: "writing events",
        source,
    })?;
    Ok(summary)
}

fn write_event(output: &mut impl Write, event: &events::Event) -> Result<()> {
    serde_json::to_writer(&mut *output, event)
        .map_err(std::io::Error::from)
        .and_then(|()| output.write_all(b"\n"))
        .map_err(|source| Error::Io {
            context: "writing events",
            source,
        })
}

fn warn_line(warn: &mut impl Write, line: u64, e: &events::DecodeError) -> Result<()> {
    writeln!(warn, "warning: line {line} skipped: {e}").map_err(|source| Error::Io {
        context: "writing warnings",
        source,
    })
}

/// What one line's items came to.
#[derive(Default)]
struct Tally {
    items: u64,
    skipped: u64,
    /// Why the first skipped item was.
    first: Option<events::DecodeError>,
}

/// Whether `line` is an object whose `items` is an array (what [`events::decode`] reads
/// as a `List`), found without keeping anything of it.
fn is_list(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        items: Option<IsArray>,
    }
    struct IsArray(bool);
    impl<'de> serde::Deserialize<'de> for IsArray {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = IsArray;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> std::result::Result<IsArray, A::Error> {
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    Ok(IsArray(true))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<IsArray, A::Error> {
                    while map
                        .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                        .is_some()
                    {}
                    Ok(IsArray(false))
                }
                fn visit_bool<E>(self, _: bool) -> std::result::Result<IsArray, E> {
                    Ok(IsArray(false))
                }
                fn visit_i64<E>(self, _: i64) -> std::result::Result<IsArray, E> {
                    Ok(IsArray(false))
                }
                fn visit_u64<E>(self, _: u64) -> std::result::Result<IsArray, E> {
                    Ok(IsArray(false))
                }
                fn visit_f64<E>(self, _: f64) -> std::result::Result<IsArray, E> {
                    Ok(IsArray(false))
                }
                fn visit_str<E>(self, _: &str) -> std::result::Result<IsArray, E> {
                    Ok(IsArray(false))
                }
                fn visit_unit<E>(self) -> std::result::Result<IsArray, E> {
                    Ok(IsArray(false))
                }
            }
            d.deserialize_any(V)
        }
    }
    // serde reads a struct from an array too: only an object is a List.
    line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<Probe>(line)
            .is_ok_and(|p| matches!(p.items, Some(IsArray(true))))
}

/// Hands `take` each item of a `List` line ([`is_list`]) as [`events::decode`] reads it,
/// one at a time: an item is decoded from its bytes in the line and dropped before the
/// next, so a line costs its own bytes and one item, however many items it holds. `Some`
/// when the line as a whole could not be read.
fn for_each_list_item(
    line: &[u8],
    take: &mut dyn FnMut(Decoded) -> Result<()>,
) -> Result<Option<events::DecodeError>> {
    use serde::de::DeserializeSeed;
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(line);
    let seed = ListSeed {
        in_items: false,
        take,
        failed: &mut failed,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(parsed
        .err()
        .map(|e| events::DecodeError::Syntax(format!("invalid data at column {}", e.column()))))
}

/// A `List` line, read item by item: first its top-level object (`items` is read, the rest
/// skipped), then, with `in_items`, the array of `items`, each decoded from its own bytes as
/// it is reached.
struct ListSeed<'a> {
    in_items: bool,
    take: &'a mut dyn FnMut(Decoded) -> Result<()>,
    /// The I/O error that stopped the items.
    failed: &'a mut Option<Error>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        if self.in_items {
            d.deserialize_seq(self)
        } else {
            d.deserialize_map(self)
        }
    }
}

impl<'de> serde::de::Visitor<'de> for ListSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.in_items {
            "an array of items"
        } else {
            "a List"
        })
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "items" {
                map.next_value_seed(ListSeed {
                    in_items: true,
                    take: &mut *self.take,
                    failed: &mut *self.failed,
                })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
            let decoded = match events::decode(raw.get().as_bytes()) {
                Ok(items) => items,
                Err(e) => vec![Decoded::Skipped(e)],
            };
            for item in decoded {
                if let Err(e) = (self.take)(item) {
                    *self.failed = Some(e);
                    return Err(A::Error::custom("writing events failed"));
                }
            }
        }
        Ok(())
    }
}
