//! Record decoding: a page body read record by record as it is parsed, each record's
//! `data.value` (base64 of a PipelineRun's JSON) decoded into the event model's object.

use super::RecordOutcome;
use super::error::SweepError;
use crate::events::{self, Decoded};
use base64::Engine as _;
use serde::Deserialize;

/// Longest page token taken (Results' tokens are a few hundred bytes): a longer one is a
/// malformed page. Tokens go back in the next request's URL.
pub const MAX_PAGE_TOKEN_BYTES: usize = 8 * 1024;

fn decode_record(data: Option<RawAny>) -> RecordOutcome {
    let Some(data) = data else {
        return RecordOutcome::Undecodable("record has no data".into());
    };
    let Some(value) = data.value else {
        return RecordOutcome::Undecodable("record has no data.value".into());
    };
    // protojson writes bytes as standard base64; it reads URL-safe too.
    let bytes = match base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
        Ok(b) => b,
        Err(_) => match base64::engine::general_purpose::URL_SAFE.decode(value.as_bytes()) {
            Ok(b) => b,
            Err(_) => return RecordOutcome::Undecodable("data.value is not base64".into()),
        },
    };
    // A record holds one object: a `List` (its `items` would be decoded one by one
    // before being refused) is refused after a pass that keeps nothing of it.
    if serde_json::from_slice::<ListProbe>(&bytes).is_ok_and(|p| p.items.is_some()) {
        return RecordOutcome::Undecodable("data.value is a List, not one object".into());
    }
    match events::decode_one(&bytes) {
        Decoded::Object(o) => RecordOutcome::Object(o),
        Decoded::NoEvents => RecordOutcome::NoEvents,
        Decoded::Skipped(e) => RecordOutcome::Undecodable(e.to_string()),
    }
}

/// serde_json's message quotes pieces of the input only in `invalid value`/`unknown
/// variant` messages; keep the category and position.
fn redact_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected structure",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// Whether a document has `items`, read without keeping anything.
#[derive(Deserialize)]
struct ListProbe {
    #[serde(default)]
    items: Option<serde::de::IgnoredAny>,
}

/// A page as [`decode_page`] leaves it: the records within the window, decoded.
#[derive(Debug, Default)]
pub(super) struct DecodedPage {
    pub(super) records: Vec<RecordOutcome>,
    /// Records on the page, those past the window's start included.
    pub(super) read: usize,
    /// A record last updated before the window's start was on the page.
    pub(super) reached_window_start: bool,
    pub(super) next_page_token: Option<String>,
}

/// Decodes a page body record by record ([`PageSeed`]): at most `max_records`, those
/// updated before `since` (and all after them) skipped unread.
pub(super) fn decode_page(
    body: &[u8],
    since: jiff::Timestamp,
    max_records: usize,
) -> Result<DecodedPage, SweepError> {
    use serde::de::DeserializeSeed;
    let mut page = DecodedPage::default();
    let mut refused = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = PageSeed {
        since,
        max_records,
        page: &mut page,
        refused: &mut refused,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(why) = refused {
        return Err(SweepError::MalformedPage(why));
    }
    parsed.map_err(|e| {
        SweepError::MalformedPage(format!("not a records page: {}", redact_json_error(&e)))
    })?;
    Ok(page)
}

/// Reads a records page into a [`DecodedPage`] as it is parsed: each record is decoded
/// and dropped before the next is read, so a page costs its records' objects, not a tree
/// of all its records. grpc-gateway writes proto field names (`next_page_token`) or their
/// JSON names (`nextPageToken`) depending on its marshaler options: both are read.
struct PageSeed<'a> {
    since: jiff::Timestamp,
    max_records: usize,
    page: &'a mut DecodedPage,
    /// Why the page was refused, when it was for its content (said without the content).
    refused: &'a mut Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum PageField {
    #[serde(rename = "records")]
    Records,
    #[serde(rename = "next_page_token", alias = "nextPageToken")]
    NextPageToken,
    #[serde(other)]
    Other,
}

impl<'de> serde::de::DeserializeSeed<'de> for PageSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a records page")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(field) = map.next_key::<PageField>()? {
            match field {
                PageField::Records => map.next_value_seed(RecordsSeed {
                    since: self.since,
                    max_records: self.max_records,
                    page: &mut *self.page,
                    refused: &mut *self.refused,
                })?,
                PageField::NextPageToken => {
                    let token: Option<BoundedToken> = map.next_value()?;
                    match token {
                        Some(BoundedToken(Some(t))) => self.page.next_page_token = Some(t),
                        Some(BoundedToken(None)) => {
                            *self.refused = Some(format!(
                                "a page token longer than {MAX_PAGE_TOKEN_BYTES} bytes"
                            ));
                            return Err(A::Error::custom("page token too long"));
                        }
                        None => self.page.next_page_token = None,
                    }
                }
                PageField::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A page token, `None` when longer than [`MAX_PAGE_TOKEN_BYTES`] (not kept).
struct BoundedToken(Option<String>);

impl<'de> Deserialize<'de> for BoundedToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = BoundedToken;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a page token")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BoundedToken, E> {
                Ok(BoundedToken(
                    (v.len() <= MAX_PAGE_TOKEN_BYTES).then(|| v.to_owned()),
                ))
            }
        }
        d.deserialize_str(V)
    }
}

/// The `records` array of a page, decoded one record at a time (see [`PageSeed`]).
struct RecordsSeed<'a> {
    since: jiff::Timestamp,
    max_records: usize,
    page: &'a mut DecodedPage,
    refused: &'a mut Option<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        loop {
            // Past the window's start, records are skipped unread (still counted).
            let more = if self.page.reached_window_start {
                seq.next_element::<serde::de::IgnoredAny>()?.is_some()
            } else {
                match seq.next_element::<RawRecord>()? {
                    None => false,
                    Some(record) => {
                        if let Some(updated) = record.update_time.as_deref()
                            && let Ok(at) = updated.parse::<jiff::Timestamp>()
                            && at < self.since
                        {
                            self.page.reached_window_start = true;
                        } else {
                            self.page.records.push(decode_record(record.data));
                        }
                        true
                    }
                }
            };
            if !more {
                return Ok(());
            }
            self.page.read += 1;
            if self.page.read > self.max_records {
                *self.refused = Some(format!(
                    "more records than the {} asked for",
                    self.max_records
                ));
                return Err(A::Error::custom("too many records"));
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawRecord {
    #[serde(default)]
    data: Option<RawAny>,
    #[serde(default, alias = "updateTime")]
    update_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawAny {
    #[serde(default)]
    value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::results::fake::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn both_spellings_of_page_fields_are_read() {
        let handler: Handler = Arc::new(|req: &Seen| {
            let value = |uid: &str| base64::engine::general_purpose::STANDARD.encode(run_json(uid));
            let page = match req.query.get("page_token").map(String::as_str) {
                None => serde_json::json!({
                    "records": [{"data": {"value": value("a")}, "updateTime": "2026-01-01T12:00:00Z"}],
                    "nextPageToken": "t1"
                }),
                _ => serde_json::json!({
                    "records": [
                        {"data": {"value": value("b")}, "update_time": "2026-01-01T11:00:00Z"},
                        {"data": {"value": value("c")}, "updateTime": "2026-01-01T08:00:00Z"}
                    ],
                    "next_page_token": "t2"
                }),
            };
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let (uids, err) = drain(&mut client.records_since(since("2026-01-01T09:00:00Z"))).await;
        assert!(err.is_none(), "{err:?}");
        // `updateTime` stopped the listing at "c", as `update_time` would.
        assert_eq!(uids, ["a", "b"]);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn undecodable_values_are_outcomes_not_errors() {
        let handler: Handler = Arc::new(|_: &Seen| {
            let not_b64 = serde_json::json!({"data": {"value": "***"}, "update_time": "2026-01-01T12:00:00Z"});
            let not_run = serde_json::json!({
                "data": {"value": base64::engine::general_purpose::STANDARD.encode("[1]")},
                "update_time": "2026-01-01T12:00:00Z"
            });
            let no_data = serde_json::json!({"update_time": "2026-01-01T12:00:00Z"});
            let page = serde_json::json!({"records": [not_b64, record("ok", "2026-01-01T12:00:00Z"), not_run, no_data]});
            (200, page.to_string())
        });
        let (addr, _) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let page = pages.next_page().await.unwrap().unwrap();
        assert_eq!(page.read, 4);
        let kinds: Vec<_> = page
            .records
            .iter()
            .map(|r| match r {
                RecordOutcome::Object(_) => "object",
                RecordOutcome::NoEvents => "none",
                RecordOutcome::Undecodable(_) => "undecodable",
            })
            .collect();
        assert_eq!(
            kinds,
            ["undecodable", "object", "undecodable", "undecodable"]
        );
        assert!(pages.next_page().await.is_none());
    }

    #[test]
    fn a_page_is_decoded_record_by_record_up_to_the_page_size() {
        let t = since("2026-01-01T00:00:00Z");
        let empties = |n: usize| format!("{{\"records\":[{}]}}", vec!["{}"; n].join(","));
        let page = decode_page(empties(100).as_bytes(), t, 100).expect("a page");
        assert_eq!((page.read, page.records.len()), (100, 100));
        let err = decode_page(empties(101).as_bytes(), t, 100).expect_err("too many");
        assert!(
            err.to_string().contains("more records than the 100"),
            "{err}"
        );
        // Records past the window's start are counted, not decoded; the token is read
        // wherever it is.
        let body = serde_json::json!({
            "next_page_token": "n",
            "records": [record("a", "2026-01-01T12:00:00Z"), record("old", "2025-12-31T00:00:00Z"), {"data": 1}],
        });
        let page = decode_page(body.to_string().as_bytes(), t, 100).expect("a page");
        assert_eq!((page.read, page.records.len()), (3, 1));
        assert!(page.reached_window_start);
        assert_eq!(page.next_page_token.as_deref(), Some("n"));
        // A record holding a List is refused without decoding its items.
        let list = format!("{{\"kind\":\"List\",\"items\":[{}]}}", run_json("x"));
        let body = serde_json::json!({"records": [{"data": {"value": base64::engine::general_purpose::STANDARD.encode(list)}}]});
        let page = decode_page(body.to_string().as_bytes(), t, 100).expect("a page");
        assert_eq!(
            page.records,
            [RecordOutcome::Undecodable(
                "data.value is a List, not one object".into()
            )]
        );
        assert!(decode_page(b"[]", t, 100).is_err(), "not a page");
        assert!(decode_page(b"{} x", t, 100).is_err(), "trailing bytes");
    }
}
