//! Helpers shared by the napi bindings: JS errors with codes, option
//! parsing, value conversion and the pool-to-JS-thread mailbox. The capability bindings live beside their
//! cores (`cache::js`, ...).

pub mod callback;
pub mod errors;
pub mod fields;
pub mod keys;
pub mod mailbox;
pub mod module;
pub mod napi;
pub mod options;
pub mod raw;
pub mod structured;
pub mod value;
