//! Reading one kind page by page for the count, bounded by bytes, not by objects: a page's
//! body is read up to [`PAGE_BYTES`] and decoded one item at a time into the little the
//! count reads (a name, a status); every other field is skipped unread, and no item is
//! kept past the callback.
//!
//! A page is asked for [`PAGE`] objects. Objects are usually small (metadata about 1 KB,
//! a Release 5 to 20 KB), but any tenant may make them as large as the API server takes
//! (etcd's 1.5 MB, in a spec or in thousands of labels): a page whose body passes
//! [`PAGE_BYTES`] is dropped unread and asked again with half as many objects, from the
//! same `continue` token, down to one object (which always fits). So a listing holds at
//! most [`PAGE_BYTES`] of body (twice that for the moment it is copied into one buffer)
//! whatever tenants put in their objects, where pages of 500 metadata or even 8 whole
//! objects held up to 750 or 12 MB.
//!
//! Why not `Api::list`: kube's client collects the body, copies it twice and decodes every
//! field of every item (with a page of 500 objects of 1.5 MB, over 2 GB), and on a decoding
//! error logs the whole body, names included.

use crate::events::decode::redact;
use crate::events::lenient::{ObjectField, StringField};
use crate::events::object::{Kind, WatchedKind};
use kube::Client;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::core::Request;
use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;
use tracing::info;

/// Objects a page asks for.
pub const PAGE: u32 = 500;
/// Most bytes of one page's body: past it the page is asked again with half as many
/// objects. An object is at most 1.5 MB, so one always fits.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Requests one listing makes at most (pages, and pages asked again smaller): every
/// listing ends.
pub const MAX_REQUESTS: usize = 100_000;
/// How long one page may take to arrive whole: an API server that trickles its answer
/// does not hold the count.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// Why a kind could not be read. Says which kind, never an object's name or a value.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("listing {kind} failed: {source}")]
    Request {
        kind: Kind,
        #[source]
        source: kube::Error,
    },
    #[error("listing {kind} was answered {code}")]
    Status { kind: Kind, code: u16 },
    #[error("reading a page of {kind} failed: {source}")]
    Read {
        kind: Kind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a page of {kind} did not arrive within {}s", PAGE_DEADLINE.as_secs())]
    Deadline { kind: Kind },
    #[error("a page of {kind} is not a list: {detail}")]
    Decode { kind: Kind, detail: String },
    #[error("one object of {kind} is over {PAGE_BYTES} bytes")]
    ObjectTooLarge { kind: Kind },
    #[error("listing {kind} did not end within {MAX_REQUESTS} requests")]
    TooManyRequests { kind: Kind },
}

/// What a listing found: the kind is not served (its CRD is missing), or it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    NotServed,
    Read,
}

/// What the listing asks the API server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `PartialObjectMetadataList`: metadata only.
    Metadata,
    /// The objects whole (the count needs their status).
    Whole,
}

/// An item of a listing as the count reads it by its name: the name only.
#[derive(Debug, Deserialize)]
pub struct Named {
    metadata: Option<ObjectField<NameOnly>>,
}

#[derive(Debug, Deserialize)]
struct NameOnly {
    name: Option<StringField>,
}

impl Named {
    /// The object's name; empty when it has none (or not a string).
    pub fn name(&self) -> &str {
        match &self.metadata {
            Some(ObjectField::Ok(NameOnly {
                name: Some(StringField::Ok(name)),
            })) => name,
            _ => "",
        }
    }
}

/// An item of a listing as the count reads it by its status: the status only (a
/// Release's spec, up to 1.5 MB, is skipped unread).
#[derive(Debug, Deserialize)]
pub struct WithStatus {
    pub status: Option<serde_json::Value>,
}

/// Calls `each` with every object of `w` (that matches its selector), read as `T`, page by
/// page. Items that are not JSON objects are skipped.
pub async fn each<T: DeserializeOwned>(
    client: &Client,
    w: &WatchedKind,
    form: Form,
    each: impl FnMut(T),
) -> Result<Listed, ListError> {
    let gvk = GroupVersionKind::gvk(w.group, w.version, w.name);
    let resource = ApiResource::from_gvk_with_plural(&gvk, w.plural);
    // Without a namespace: the cluster-wide path.
    let request = Request::new(DynamicObject::url_path(&resource, None));
    let fetch = |limit: u32, token: Option<String>| {
        let request = &request;
        async move {
            let mut lp = ListParams::default().limit(limit);
            if let Some(selector) = w.selector {
                lp = lp.labels(selector);
            }
            if let Some(token) = token {
                lp = lp.continue_token(&token);
            }
            let built = match form {
                Form::Metadata => request.list_metadata(&lp),
                Form::Whole => request.list(&lp),
            };
            let req = built.map_err(|e| ListError::Request {
                kind: w.kind,
                source: kube::Error::BuildRequest(e),
            })?;
            read_page(client, w.kind, req).await
        }
    };
    pages(w.kind, PAGE, fetch, each).await
}

/// One page's body, or [`Fetched::TooLarge`] once it passes [`PAGE_BYTES`] (read that far,
/// or not at all when its length says so, then dropped).
async fn read_page(
    client: &Client,
    kind: Kind,
    req: hyper::Request<Vec<u8>>,
) -> Result<Fetched, ListError> {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    let read = async {
        let response = client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|source| ListError::Request { kind, source })?;
        let status = response.status();
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(Fetched::NotServed);
        }
        if !status.is_success() {
            return Err(ListError::Status {
                kind,
                code: status.as_u16(),
            });
        }
        match Limited::new(response.into_body(), PAGE_BYTES)
            .collect()
            .await
        {
            // One buffer of exactly the body's size (the chunks are dropped after the copy):
            // at most twice PAGE_BYTES for a moment, decoded in place.
            Ok(body) => Ok(Fetched::Body(body.to_bytes())),
            Err(e) if e.is::<LengthLimitError>() => Ok(Fetched::TooLarge),
            Err(source) => Err(ListError::Read { kind, source }),
        }
    };
    tokio::time::timeout(PAGE_DEADLINE, read)
        .await
        .map_err(|_| ListError::Deadline { kind })?
}

/// What one request for a page gave.
pub enum Fetched {
    Body(bytes::Bytes),
    /// Over [`PAGE_BYTES`]: to be asked again with fewer objects.
    TooLarge,
    /// 404: the kind is not served.
    NotServed,
}

/// The paging rule, without I/O: `fetch(limit, continue)` gives a page; `each` gets every
/// item of every page. A page over the byte bound is asked again with half the objects.
pub async fn pages<T: DeserializeOwned, F, Fut>(
    kind: Kind,
    page: u32,
    mut fetch: F,
    mut each: impl FnMut(T),
) -> Result<Listed, ListError>
where
    F: FnMut(u32, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Fetched, ListError>>,
{
    let mut limit = page.max(1);
    let mut token: Option<String> = None;
    for _ in 0..MAX_REQUESTS {
        let body = match fetch(limit, token.clone()).await? {
            Fetched::NotServed => return Ok(Listed::NotServed),
            Fetched::TooLarge if limit == 1 => return Err(ListError::ObjectTooLarge { kind }),
            Fetched::TooLarge => {
                limit /= 2;
                info!(%kind, limit, "a page was over {PAGE_BYTES} bytes: asking for fewer objects a page");
                continue;
            }
            Fetched::Body(body) => body,
        };
        match decode_page(&body, &mut each).map_err(|e| ListError::Decode {
            kind,
            detail: redact(&e),
        })? {
            Some(next) => token = Some(next),
            None => return Ok(Listed::Read),
        }
    }
    Err(ListError::TooManyRequests { kind })
}

/// Decodes a list's body, calling `each` with every item that is a JSON object, one at a
/// time; gives the `continue` token when there is a next page.
pub fn decode_page<T: DeserializeOwned>(
    body: &[u8],
    each: &mut impl FnMut(T),
) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let token = ListSeed {
        each,
        item: PhantomData,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(token.filter(|t| !t.is_empty()))
}

/// The list document: `metadata.continue` kept, `items` handed over one by one, the rest
/// skipped.
struct ListSeed<'a, T, F> {
    each: &'a mut F,
    item: PhantomData<T>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(rename = "continue")]
    token: Option<StringField>,
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> DeserializeSeed<'de> for ListSeed<'_, T, F> {
    type Value = Option<String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for ListSeed<'_, T, F> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut token = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_ref() {
                "metadata" => {
                    if let Some(ObjectField::Ok(ListMeta {
                        token: Some(StringField::Ok(t)),
                    })) = map.next_value::<Option<ObjectField<ListMeta>>>()?
                    {
                        token = Some(t);
                    }
                }
                "items" => map.next_value_seed(ItemsSeed {
                    each: &mut *self.each,
                    item: PhantomData,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(token)
    }
}

/// The `items` array, read one item at a time (null is an empty list).
struct ItemsSeed<'a, T, F> {
    each: &'a mut F,
    item: PhantomData<T>,
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> DeserializeSeed<'de> for ItemsSeed<'_, T, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for ItemsSeed<'_, T, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<ObjectField<T>>()? {
            if let ObjectField::Ok(item) = item {
                (self.each)(item);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn names(body: &str) -> Result<(Vec<String>, Option<String>), serde_json::Error> {
        let mut seen = Vec::new();
        let token = decode_page(body.as_bytes(), &mut |n: Named| {
            seen.push(n.name().to_owned())
        })?;
        Ok((seen, token))
    }

    #[test]
    fn a_page_gives_its_names_and_its_continue_token() {
        let body = r#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1",
            "metadata":{"resourceVersion":"9","continue":"abc"},
            "items":[{"metadata":{"name":"a","labels":{"x":"y"}}},{"metadata":{"name":"b"}}]}"#;
        assert_eq!(
            names(body).expect("page"),
            (vec!["a".to_owned(), "b".to_owned()], Some("abc".to_owned()))
        );
        let last = r#"{"metadata":{"continue":""},"items":[{"metadata":{"name":"c"}}]}"#;
        assert_eq!(names(last).expect("page"), (vec!["c".to_owned()], None));
    }

    #[test]
    fn odd_items_are_skipped_or_nameless_and_never_fail_the_page() {
        let body = r#"{"items":[1,"x",null,[],{},{"metadata":7},{"metadata":{"name":5}},
            {"metadata":{"name":"ok"}}],"metadata":{"continue":7}}"#;
        let (seen, token) = names(body).expect("page");
        assert_eq!(seen, ["", "", "", "ok"]);
        assert_eq!(token, None);
        assert_eq!(names(r#"{"items":null}"#).expect("page").0.len(), 0);
        assert_eq!(names("{}").expect("page").0.len(), 0);
    }

    #[test]
    fn garbage_is_an_error_that_names_no_value() {
        for body in [
            "",
            "[]",
            "{\"items\":{\"a\":1}}",
            "{\"items\":[] } x",
            "secret-name",
        ] {
            let e = names(body).expect_err(body);
            assert!(!redact(&e).contains("secret"), "{}", redact(&e));
        }
    }

    #[test]
    fn an_array_of_empty_objects_is_read_one_at_a_time() {
        // A page's bound of `{}`: counted, nothing kept.
        let n = PAGE_BYTES / 3;
        let body = format!("{{\"items\":[{}{{}}]}}", "{},".repeat(n - 1));
        let mut count = 0usize;
        decode_page(body.as_bytes(), &mut |_: Named| count += 1).expect("page");
        assert_eq!(count, n);
    }

    #[test]
    fn a_status_is_read_and_the_spec_skipped() {
        let body = format!(
            r#"{{"items":[{{"spec":{{"pad":"{}"}},"status":{{"completionTime":"t"}}}},{{"spec":{{}}}}]}}"#,
            "x".repeat(100_000)
        );
        let mut statuses = Vec::new();
        decode_page(body.as_bytes(), &mut |o: WithStatus| {
            statuses.push(o.status)
        })
        .expect("page");
        assert_eq!(
            statuses,
            [Some(serde_json::json!({"completionTime": "t"})), None]
        );
    }

    /// A fake API server of pages: each request answers with the next of `answers`, and
    /// the limits and tokens asked are recorded.
    async fn run(
        answers: Vec<Fetched>,
    ) -> (Result<Listed, ListError>, Vec<(u32, Option<String>)>, usize) {
        let answers = std::sync::Mutex::new(VecDeque::from(answers));
        let asked = std::sync::Mutex::new(Vec::new());
        let mut items = 0usize;
        let fetch = |limit, token| {
            asked.lock().expect("lock").push((limit, token));
            let next = answers.lock().expect("lock").pop_front();
            async move { Ok(next.unwrap_or(Fetched::NotServed)) }
        };
        let r = pages(Kind::Release, 500, fetch, |_: Named| items += 1).await;
        (r, asked.into_inner().expect("lock"), items)
    }

    fn page(items: usize, token: Option<&str>) -> Fetched {
        let items = vec![r#"{"metadata":{"name":"n"}}"#; items].join(",");
        let meta = token.map_or(String::new(), |t| {
            format!(r#","metadata":{{"continue":"{t}"}}"#)
        });
        Fetched::Body(bytes::Bytes::from(format!(
            r#"{{"items":[{items}]{meta}}}"#
        )))
    }

    #[tokio::test]
    async fn a_page_over_the_bound_is_asked_again_smaller_from_the_same_token() {
        let (r, asked, items) = run(vec![
            page(500, Some("t1")),
            Fetched::TooLarge,
            Fetched::TooLarge,
            page(125, Some("t2")),
            page(3, None),
        ])
        .await;
        assert_eq!(r.expect("listed"), Listed::Read);
        assert_eq!(items, 628);
        let t1 = Some("t1".to_owned());
        assert_eq!(
            asked,
            [
                (500, None),
                (500, t1.clone()),
                (250, t1.clone()),
                (125, t1),
                (125, Some("t2".to_owned()))
            ]
        );
    }

    #[tokio::test]
    async fn one_object_over_the_bound_ends_the_listing_with_an_error() {
        let answers = std::iter::repeat_with(|| Fetched::TooLarge)
            .take(20)
            .collect();
        let (r, asked, _) = run(answers).await;
        assert!(matches!(
            r,
            Err(ListError::ObjectTooLarge {
                kind: Kind::Release
            })
        ));
        // 500, 250, 125, 62, 31, 15, 7, 3, 1.
        assert_eq!(asked.len(), 9);
    }

    #[tokio::test]
    async fn a_missing_kind_is_not_served_and_a_listing_of_endless_pages_ends() {
        let (r, _, _) = run(vec![Fetched::NotServed]).await;
        assert_eq!(r.expect("listed"), Listed::NotServed);
        let fetch = |_, _| async { Ok(page(0, Some("again"))) };
        let r = pages(Kind::Release, 500, fetch, |_: Named| {}).await;
        assert!(matches!(r, Err(ListError::TooManyRequests { .. })));
    }
}
