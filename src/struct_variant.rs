//! An enum whose variants are each their own struct, written in files as
//! struct variants: `Count(on: "t/#", at_least: 3)`, not the newtype form
//! `Count((on: "t/#", at_least: 3))` serde derives for `Count(Count)`.
//!
//! This is what lets a check kind live in one file with its spec (a plain
//! `#[derive(Deserialize, Serialize)]` struct) while scenario files keep the
//! format they have always had. [`kinds_enum!`] generates the enum and its
//! serde impls; [`StructVariant`] and [`AsStructVariant`] adapt serde's
//! enum access to a struct's derived impls. A leaf: imports nothing from
//! the crate.

use serde::de::{self, VariantAccess};
use serde::ser::{self, Impossible, SerializeStruct, SerializeStructVariant};

/// Reads a struct variant's fields with the struct's own derived
/// `Deserialize` (which asks for a struct, and gets the variant's fields).
pub struct StructVariant<A>(pub A);

impl<'de, A: VariantAccess<'de>> de::Deserializer<'de> for StructVariant<A> {
    type Error = A::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::StructVariant,
            &visitor,
        ))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(fields, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A variant's name, as the file writes it.
pub struct VariantName(pub String);

impl<'de> de::Deserialize<'de> for VariantName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl de::Visitor<'_> for Name {
            type Value = VariantName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a variant name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VariantName, E> {
                Ok(VariantName(v.to_string()))
            }
        }
        d.deserialize_identifier(Name)
    }
}

/// Writes a struct (through its own derived `Serialize`) as the struct
/// variant `variant` of enum `name`.
pub struct AsStructVariant<S> {
    pub inner: S,
    pub name: &'static str,
    pub index: u32,
    pub variant: &'static str,
}

/// The struct's fields, written as the variant's.
pub struct Fields<V>(V);

impl<V: SerializeStructVariant> SerializeStruct for Fields<V> {
    type Ok = V::Ok;
    type Error = V::Error;

    fn serialize_field<T: ?Sized + serde::Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.0.serialize_field(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), Self::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        self.0.end()
    }
}

fn not_a_struct<E: ser::Error>() -> E {
    E::custom("a kind of this enum is written as a struct")
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(not_a_struct())
        })*
    };
}

impl<S: ser::Serializer> ser::Serializer for AsStructVariant<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = Fields<S::SerializeStructVariant>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        self.inner
            .serialize_struct_variant(self.name, self.index, self.variant, len)
            .map(Fields)
    }

    refuse! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: ?Sized + serde::Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: ?Sized + serde::Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: ?Sized + serde::Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_a_struct())
    }
}

/// An enum of kinds, one variant per kind struct, read and written as
/// struct variants. Generates the enum, `KINDS` (the variant names),
/// `kind_name`, `kind` (the variant as the trait every kind implements),
/// `From<Kind>` for each kind, and the serde impls.
#[macro_export]
macro_rules! kinds_enum {
    (
        dispatch $tr:path;
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$doc:meta])* $variant:ident($ty:ty) $($shape:ident)?),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$doc])* $variant($ty)),*
        }

        impl $name {
            /// Every kind's name, as files write it.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The kind's name, as files write it.
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => stringify!($variant)),*
                }
            }

            /// This value's kind, as the trait every kind implements.
            pub fn kind(&self) -> &dyn $tr {
                match self {
                    $($name::$variant(k) => k),*
                }
            }
        }

        $(impl From<$ty> for $name {
            fn from(k: $ty) -> $name {
                $name::$variant(k)
            }
        })*

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Kinds;
                impl<'de> serde::de::Visitor<'de> for Kinds {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {}", $name::KINDS.join(", "))
                    }
                    fn visit_enum<A: serde::de::EnumAccess<'de>>(
                        self,
                        data: A,
                    ) -> Result<$name, A::Error> {
                        use serde::Deserialize as _;
                        let (kind, variant) =
                            data.variant::<$crate::struct_variant::VariantName>()?;
                        match kind.0.as_str() {
                            $(stringify!($variant) => {
                                $crate::kind_read!($($shape)?; $ty; variant).map($name::$variant)
                            })*
                            other => Err(serde::de::Error::unknown_variant(other, $name::KINDS)),
                        }
                    }
                }
                d.deserialize_enum(stringify!($name), $name::KINDS, Kinds)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let variant = self.kind_name();
                let index = $name::KINDS.iter().position(|k| *k == variant).unwrap_or(0) as u32;
                let s = $crate::struct_variant::AsStructVariant {
                    inner: s,
                    name: stringify!($name),
                    index,
                    variant,
                };
                match self {
                    $($name::$variant(k) => $crate::kind_write!($($shape)?; k; s)),*
                }
            }
        }
    };
}

/// How [`kinds_enum!`] reads one kind: a struct (the default), a `newtype`
/// (`Drop(Device("a"))`, the kind `#[serde(transparent)]`) or a `unit`
/// (`RestartBroker`).
#[doc(hidden)]
#[macro_export]
macro_rules! kind_read {
    (; $ty:ty; $v:ident) => {
        <$ty>::deserialize($crate::struct_variant::StructVariant($v))
    };
    (newtype; $ty:ty; $v:ident) => {
        serde::de::VariantAccess::newtype_variant::<$ty>($v)
    };
    (unit; $ty:ty; $v:ident) => {
        serde::de::VariantAccess::unit_variant($v).map(|()| <$ty>::default())
    };
}

/// How [`kinds_enum!`] writes one kind (see [`kind_read!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! kind_write {
    (; $k:ident; $s:ident) => {
        serde::Serialize::serialize($k, $s)
    };
    (newtype; $k:ident; $s:ident) => {
        serde::Serializer::serialize_newtype_variant($s.inner, $s.name, $s.index, $s.variant, $k)
    };
    (unit; $k:ident; $s:ident) => {{
        let _ = $k;
        serde::Serializer::serialize_unit_variant($s.inner, $s.name, $s.index, $s.variant)
    }};
}
