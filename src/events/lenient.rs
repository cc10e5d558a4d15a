//! Decoding that tolerates any JSON shape in the fields the event model reads, so that a
//! field of the wrong type is reported by its path (and only when an event needs it), and
//! never with the value it held: values come from the cluster and may be names.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value where a string is wanted: the string, or the type that stood there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringField {
    Ok(String),
    Wrong(JsonType),
}

/// A JSON array whose elements are only counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountField {
    Ok(usize),
    Wrong(JsonType),
}

/// A JSON value where a boolean is wanted: the boolean, or the type that stood there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolField {
    Ok(bool),
    Wrong(JsonType),
}

/// A JSON object decoded as `T`, or the type that stood there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectField<T> {
    Ok(T),
    Wrong(JsonType),
}

/// The kind of JSON value found where another was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Bool => "a boolean",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        }
    }
}

/// The visitor methods of the JSON types a lenient reader does not read (`bool`, `number`,
/// `string`, `null`, `array`, `object`): each gives `$wrap` of the type found, an array or
/// an object drained unread.
macro_rules! wrong_types {
    ($ty:ty, $wrap:expr; $($json:ident),*) => { $( wrong_types!(@$json $ty, $wrap); )* };
    (@bool $ty:ty, $wrap:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($wrap(JsonType::Bool))
        }
    };
    (@number $ty:ty, $wrap:expr) => {
        fn visit_i64<E>(self, _: i64) -> Result<$ty, E> {
            Ok($wrap(JsonType::Number))
        }
        fn visit_u64<E>(self, _: u64) -> Result<$ty, E> {
            Ok($wrap(JsonType::Number))
        }
        fn visit_f64<E>(self, _: f64) -> Result<$ty, E> {
            Ok($wrap(JsonType::Number))
        }
    };
    (@string $ty:ty, $wrap:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<$ty, E> {
            Ok($wrap(JsonType::String))
        }
    };
    (@null $ty:ty, $wrap:expr) => {
        fn visit_unit<E>(self) -> Result<$ty, E> {
            Ok($wrap(JsonType::Null))
        }
    };
    (@array $ty:ty, $wrap:expr) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok($wrap(JsonType::Array))
        }
    };
    (@object $ty:ty, $wrap:expr) => {
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
            use serde::de::IgnoredAny;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($wrap(JsonType::Object))
        }
    };
}
pub(super) use wrong_types;

/// A lenient reader: `Deserialize` for `$ty` through a visitor with the methods given
/// (those of the JSON types it reads), every other JSON type giving `$wrap` of it.
macro_rules! lenient {
    ($ty:ty, $wrap:expr, wrong: [$($json:ident),*], $($visit:tt)*) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("any JSON value")
                    }
                    $($visit)*
                    wrong_types!($ty, $wrap; $($json),*);
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(super) use lenient;

lenient!(StringField, StringField::Wrong, wrong: [bool, number, null, array, object],
    fn visit_str<E>(self, v: &str) -> Result<StringField, E> {
        Ok(StringField::Ok(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<StringField, E> {
        Ok(StringField::Ok(v))
    }
);

lenient!(CountField, CountField::Wrong, wrong: [bool, number, string, object],
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CountField, A::Error> {
        let mut n = 0usize;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(CountField::Ok(n))
    }
    fn visit_unit<E>(self) -> Result<CountField, E> {
        Ok(CountField::Ok(0))
    }
);

lenient!(BoolField, BoolField::Wrong, wrong: [number, string, null, array, object],
    fn visit_bool<E>(self, v: bool) -> Result<BoolField, E> {
        Ok(BoolField::Ok(v))
    }
);

/// Deserializes `T` only when the value is of the shape `T` reads (an object for `ObjectField`);
/// anything else is skipped and its type kept. Arrays are never read whole: they are
/// counted ([`CountField`]) or scanned by a visitor of their own (the object decoder's).
macro_rules! shaped {
    ($ty:ident, $visit:ident, $access:ident, $inner:ty, $wrap:expr, other: $other:ident) => {
        impl<'de, T: Deserialize<'de>> Deserialize<'de> for $ty<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<T>(std::marker::PhantomData<T>);
                impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                    type Value = $ty<T>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn $visit<A: $access<'de>>(self, access: A) -> Result<$ty<T>, A::Error> {
                        let inner: $inner = Deserialize::deserialize(
                            shaped!(@deser $access, access),
                        )?;
                        Ok($wrap(inner))
                    }
                    wrong_types!($ty<T>, $ty::Wrong; bool, number, string, null, $other);
                }
                d.deserialize_any(V(std::marker::PhantomData))
            }
        }
    };
    (@deser SeqAccess, $a:ident) => { de::value::SeqAccessDeserializer::new($a) };
    (@deser MapAccess, $a:ident) => { de::value::MapAccessDeserializer::new($a) };
}

shaped!(ObjectField, visit_map, MapAccess, T, ObjectField::Ok, other: array);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Probe {
        s: Option<StringField>,
        c: Option<CountField>,
        o: Option<ObjectField<Inner>>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        a: Option<StringField>,
    }

    #[test]
    fn right_shapes_decode() {
        let p: Probe = serde_json::from_str(r#"{"s":"x","c":[1,{},[]],"o":{"a":"b"}}"#).unwrap();
        assert_eq!(p.s, Some(StringField::Ok("x".into())));
        assert_eq!(p.c, Some(CountField::Ok(3)));
        assert_eq!(
            p.o,
            Some(ObjectField::Ok(Inner {
                a: Some(StringField::Ok("b".into()))
            }))
        );
    }

    #[test]
    fn wrong_shapes_are_kept_as_types_not_errors() {
        let p: Probe = serde_json::from_str(r#"{"s":{"deep":[1,2]},"c":"many","o":[1]}"#).unwrap();
        assert_eq!(p.s, Some(StringField::Wrong(JsonType::Object)));
        assert_eq!(p.c, Some(CountField::Wrong(JsonType::String)));
        assert_eq!(p.o, Some(ObjectField::Wrong(JsonType::Array)));
        let n: Probe = serde_json::from_str(r#"{"s":null,"c":null,"o":1.5}"#).unwrap();
        // JSON null reads as absent, as Kubernetes treats it.
        assert_eq!(n.s, None);
        assert_eq!(n.c, None);
        assert_eq!(n.o, Some(ObjectField::Wrong(JsonType::Number)));
    }
}
