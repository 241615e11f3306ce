//! KV-LIST (SPOE.txt §3.2; docs/protocol.md §4): `{ KEY VALUE }*` to the end of the payload, KEY
//! a bare string, VALUE typed data. HELLO and DISCONNECT frames carry one.

use crate::codec::{Reader, Writer};
use crate::data::TypedData;
use crate::error::{DecodeError, EncodeError};

/// A validated KV-LIST: iterating it cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvList<'a> {
    payload: &'a [u8],
}

impl<'a> KvList<'a> {
    /// Checks that `payload` is a well-formed KV-LIST.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut items = KvIter {
            r: Reader::new(payload),
        };
        while let Some(item) = items.next_item() {
            item?;
        }
        Ok(KvList { payload })
    }

    /// The items, in order; duplicate keys are all yielded (later ones win for the caller).
    pub fn iter(&self) -> KvIter<'a> {
        KvIter {
            r: Reader::new(self.payload),
        }
    }
}

impl<'a> IntoIterator for KvList<'a> {
    type Item = (&'a [u8], TypedData<'a>);
    type IntoIter = KvIter<'a>;
    fn into_iter(self) -> KvIter<'a> {
        self.iter()
    }
}

/// Iterator over the items of a [`KvList`].
#[derive(Clone, Debug)]
pub struct KvIter<'a> {
    r: Reader<'a>,
}

impl<'a> KvIter<'a> {
    fn next_item(&mut self) -> Option<Result<(&'a [u8], TypedData<'a>), DecodeError>> {
        if self.r.is_empty() {
            return None;
        }
        Some(self.r.string().and_then(|key| Ok((key, self.r.typed()?))))
    }
}

impl<'a> Iterator for KvIter<'a> {
    type Item = (&'a [u8], TypedData<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        // The list was validated by `KvList::parse`; an error here cannot happen and ends the list.
        self.next_item()?.ok()
    }
}

/// Appends one KV item.
pub fn put(w: &mut Writer<'_>, key: &[u8], value: &TypedData<'_>) -> Result<(), EncodeError> {
    w.string(key)?;
    w.typed(value)
}
