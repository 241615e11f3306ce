//! LIST-OF-ACTIONS (SPOE.txt §3.2.7 "Frame: ACK", §3.4 "Actions"; docs/protocol.md §4):
//!
//! ```text
//! ACTION  := ACTION-TYPE:u8 NB-ARGS:u8 ARGS
//! SET-VAR   (1): NB-ARGS 3: SCOPE:u8 NAME VALUE
//! UNSET-VAR (2): NB-ARGS 2: SCOPE:u8 NAME
//! ```

use core::fmt;

use crate::codec::{Reader, Writer};
use crate::data::TypedData;
use crate::error::{DecodeError, EncodeError};

/// Where HAProxy stores a variable: the `<scope>` of `<scope>.<var-prefix>.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Scope {
    /// 0, `proc`: HAProxy 2.6 only writes one that already exists (the config references it),
    /// unless `option force-set-var` is set.
    Process,
    /// 1, `sess`.
    Session,
    /// 2, `txn`.
    Transaction,
    /// 3, `req`.
    Request,
    /// 4, `res`.
    Response,
    /// Any other byte: HAProxy stops processing the ACK's actions there.
    Unknown(u8),
}

impl From<u8> for Scope {
    fn from(byte: u8) -> Self {
        match byte {
            0 => Scope::Process,
            1 => Scope::Session,
            2 => Scope::Transaction,
            3 => Scope::Request,
            4 => Scope::Response,
            other => Scope::Unknown(other),
        }
    }
}

impl From<Scope> for u8 {
    fn from(scope: Scope) -> u8 {
        match scope {
            Scope::Process => 0,
            Scope::Session => 1,
            Scope::Transaction => 2,
            Scope::Request => 3,
            Scope::Response => 4,
            Scope::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Process => f.write_str("proc"),
            Scope::Session => f.write_str("sess"),
            Scope::Transaction => f.write_str("txn"),
            Scope::Request => f.write_str("req"),
            Scope::Response => f.write_str("res"),
            Scope::Unknown(s) => write!(f, "scope{s}"),
        }
    }
}

/// SET-VAR's action type.
pub const SET_VAR: u8 = 1;
/// UNSET-VAR's action type.
pub const UNSET_VAR: u8 = 2;

/// One action of an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Set `<scope>.<var-prefix>.<name>` to `value` (NULL unsets it).
    SetVar {
        /// The variable's scope.
        scope: Scope,
        /// The name after the prefix; HAProxy ignores names outside `[A-Za-z0-9._]`.
        name: &'a [u8],
        /// The value.
        value: TypedData<'a>,
    },
    /// Unset `<scope>.<var-prefix>.<name>`.
    UnsetVar {
        /// The variable's scope.
        scope: Scope,
        /// The name after the prefix.
        name: &'a [u8],
    },
}

impl<'a> Action<'a> {
    /// Decodes one action.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let action = r.u8()?;
        let nb_args = r.u8()?;
        match (action, nb_args) {
            (SET_VAR, 3) => Ok(Action::SetVar {
                scope: Scope::from(r.u8()?),
                name: r.string()?,
                value: r.typed()?,
            }),
            (UNSET_VAR, 2) => Ok(Action::UnsetVar {
                scope: Scope::from(r.u8()?),
                name: r.string()?,
            }),
            (SET_VAR | UNSET_VAR, _) => Err(DecodeError::ActionArgs { action, nb_args }),
            _ => Err(DecodeError::UnknownAction(action)),
        }
    }

    /// Encodes this action; on error nothing is left in `w`.
    #[inline(always)]
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let start = w.position();
        // Matched by reference: copying the whole `TypedData` out of `self` would read it back
        // in pieces that straddle the bytes its producer stored (a store-forwarding stall).
        let result = match self {
            Action::SetVar { scope, name, value } => w
                .put(&[SET_VAR, 3, u8::from(*scope)])
                .and_then(|()| w.string(name))
                .and_then(|()| w.typed(value)),
            Action::UnsetVar { scope, name } => w
                .put(&[UNSET_VAR, 2, u8::from(*scope)])
                .and_then(|()| w.string(name)),
        };
        if result.is_err() {
            w.truncate(start);
        }
        result
    }
}

/// Iterator over a LIST-OF-ACTIONS; yields an error once, at the first undecodable action, then
/// stops (as HAProxy stops applying actions there).
#[derive(Clone, Debug)]
pub struct Actions<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Actions<'a> {
    /// Walks `payload`.
    pub const fn new(payload: &'a [u8]) -> Self {
        Actions {
            r: Reader::new(payload),
            failed: false,
        }
    }
}

impl<'a> Iterator for Actions<'a> {
    type Item = Result<Action<'a>, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let item = Action::decode(&mut self.r);
        self.failed = item.is_err();
        Some(item)
    }
}
