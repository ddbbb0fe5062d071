//! A jsonb argument that the SQL layer converts itself. pgrx's own `JsonB` panics (an
//! internal error, XX000) on valid jsonb that serde cannot read: nesting deeper than
//! 128 levels, numbers beyond a double. Here that is a 22023 naming the argument.

use crate::error::WorkflowError;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{direct_function_call, pg_sys, FromDatum};
use serde_json::Value;
use std::ffi::CStr;

pub struct JsonbArg(std::result::Result<Value, String>);

impl JsonbArg {
    /// The value, or a 22023 that names `field` and says what is accepted.
    pub fn into_value(self, field: &str) -> Result<Value, WorkflowError> {
        self.0.map_err(|e| {
            WorkflowError::invalid(format!(
                "{field} cannot be read ({e}); pg_workflow accepts JSON nested at most 128 levels deep \
                 whose numbers fit a double"
            ))
        })
    }
}

impl FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<JsonbArg> {
        if is_null {
            return None;
        }
        unsafe {
            let varlena = datum.cast_mut_ptr();
            let detoasted = pg_sys::pg_detoast_datum_packed(varlena);
            let text = direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(detoasted.into())])?;
            let parsed = text
                .to_str()
                .map_err(|e| e.to_string())
                .and_then(|s| serde_json::from_str::<Value>(s).map_err(|e| e.to_string()));
            pg_sys::pfree(text.as_ptr() as *mut std::ffi::c_void);
            if detoasted != varlena {
                pg_sys::pfree(detoasted as *mut std::ffi::c_void);
            }
            Some(JsonbArg(parsed))
        }
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for JsonbArg {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum().unwrap_or_else(|| panic!("argument {index} must not be null")) }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

unsafe impl SqlTranslatable for JsonbArg {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonbArg);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}
