//! Decoding that tolerates any JSON shape in the fields the event model reads, so that a
//! field of the wrong type is reported by its path (and only when an event needs it), and
//! never with the value it held: values come from the cluster and may be names.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value where a string is wanted: the string, or the type that stood there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Str {
    Ok(String),
    Wrong(JsonType),
}

/// A JSON array whose elements are only counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Ok(usize),
    Wrong(JsonType),
}

/// A JSON value where a boolean is wanted: the boolean, or the type that stood there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Ok(bool),
    Wrong(JsonType),
}

/// A JSON array of `T`, or the type that stood there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List<T> {
    Ok(Vec<T>),
    Wrong(JsonType),
}

/// A JSON object decoded as `T`, or the type that stood there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obj<T> {
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

/// The visitor methods for booleans and numbers, each giving `$wrap` of the type found:
/// every lenient reader treats them alike.
macro_rules! scalars_as {
    ($ty:ty, $wrap:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($wrap(JsonType::Bool))
        }
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
}
pub(super) use scalars_as;

/// Reads any value, keeping only its type.
struct TypeOnly;

impl<'de> Visitor<'de> for TypeOnly {
    type Value = JsonType;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    scalars_as!(JsonType, std::convert::identity);
    fn visit_str<E>(self, _: &str) -> Result<JsonType, E> {
        Ok(JsonType::String)
    }
    fn visit_unit<E>(self) -> Result<JsonType, E> {
        Ok(JsonType::Null)
    }
    fn visit_none<E>(self) -> Result<JsonType, E> {
        Ok(JsonType::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonType, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonType::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonType, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonType::Object)
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Str, E> {
                Ok(Str::Ok(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Str, E> {
                Ok(Str::Ok(v))
            }
            scalars_as!(Str, Str::Wrong);
            fn visit_unit<E>(self) -> Result<Str, E> {
                Ok(Str::Wrong(JsonType::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Str, A::Error> {
                TypeOnly.visit_seq(seq).map(Str::Wrong)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Str, A::Error> {
                TypeOnly.visit_map(map).map(Str::Wrong)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0usize;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count::Ok(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                TypeOnly.visit_map(map).map(Count::Wrong)
            }
            scalars_as!(Count, Count::Wrong);
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count::Wrong(JsonType::String))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count::Ok(0))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag::Ok(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag::Wrong(JsonType::Number))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag::Wrong(JsonType::Number))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag::Wrong(JsonType::Number))
            }
            fn visit_str<E>(self, _: &str) -> Result<Flag, E> {
                Ok(Flag::Wrong(JsonType::String))
            }
            fn visit_unit<E>(self) -> Result<Flag, E> {
                Ok(Flag::Wrong(JsonType::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Flag, A::Error> {
                TypeOnly.visit_seq(seq).map(Flag::Wrong)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Flag, A::Error> {
                TypeOnly.visit_map(map).map(Flag::Wrong)
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserializes `T` only when the value is of the shape `T` reads (an array for `List`, an
/// object for `Obj`); anything else is skipped and its type kept.
macro_rules! shaped {
    ($ty:ident, $visit:ident, $access:ident, $inner:ty, $wrap:expr) => {
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
                    scalars_as!($ty<T>, $ty::Wrong);
                    fn visit_str<E>(self, _: &str) -> Result<$ty<T>, E> {
                        Ok($ty::Wrong(JsonType::String))
                    }
                    fn visit_unit<E>(self) -> Result<$ty<T>, E> {
                        Ok($ty::Wrong(JsonType::Null))
                    }
                    shaped!(@other $access, $ty);
                }
                d.deserialize_any(V(std::marker::PhantomData))
            }
        }
    };
    (@deser SeqAccess, $a:ident) => { de::value::SeqAccessDeserializer::new($a) };
    (@deser MapAccess, $a:ident) => { de::value::MapAccessDeserializer::new($a) };
    (@other SeqAccess, $ty:ident) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty<T>, A::Error> {
            TypeOnly.visit_map(map).map($ty::Wrong)
        }
    };
    (@other MapAccess, $ty:ident) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$ty<T>, A::Error> {
            TypeOnly.visit_seq(seq).map($ty::Wrong)
        }
    };
}

shaped!(List, visit_seq, SeqAccess, Vec<T>, List::Ok);
shaped!(Obj, visit_map, MapAccess, T, Obj::Ok);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Probe {
        s: Option<Str>,
        c: Option<Count>,
        l: Option<List<Str>>,
        o: Option<Obj<Inner>>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        a: Option<Str>,
    }

    #[test]
    fn right_shapes_decode() {
        let p: Probe =
            serde_json::from_str(r#"{"s":"x","c":[1,{},[]],"l":["a",2],"o":{"a":"b"}}"#).unwrap();
        assert_eq!(p.s, Some(Str::Ok("x".into())));
        assert_eq!(p.c, Some(Count::Ok(3)));
        assert_eq!(
            p.l,
            Some(List::Ok(vec![
                Str::Ok("a".into()),
                Str::Wrong(JsonType::Number)
            ]))
        );
        assert_eq!(
            p.o,
            Some(Obj::Ok(Inner {
                a: Some(Str::Ok("b".into()))
            }))
        );
    }

    #[test]
    fn wrong_shapes_are_kept_as_types_not_errors() {
        let p: Probe =
            serde_json::from_str(r#"{"s":{"deep":[1,2]},"c":"many","l":{"x":1},"o":[1]}"#).unwrap();
        assert_eq!(p.s, Some(Str::Wrong(JsonType::Object)));
        assert_eq!(p.c, Some(Count::Wrong(JsonType::String)));
        assert_eq!(p.l, Some(List::Wrong(JsonType::Object)));
        assert_eq!(p.o, Some(Obj::Wrong(JsonType::Array)));
        let n: Probe = serde_json::from_str(r#"{"s":null,"c":null,"l":true,"o":1.5}"#).unwrap();
        // JSON null reads as absent, as Kubernetes treats it.
        assert_eq!(n.s, None);
        assert_eq!(n.c, None);
        assert_eq!(n.l, Some(List::Wrong(JsonType::Bool)));
        assert_eq!(n.o, Some(Obj::Wrong(JsonType::Number)));
    }
}
