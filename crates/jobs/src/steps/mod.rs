//! The steps that jobs share, one floor below the jobs: finding what a job works on
//! ([`lookup`]), running a command in a service's tasks ([`exec`]), stopping and starting a
//! service with the intent label ([`scale`]), what is stored and how it is named
//! ([`catalog`]), a service's volumes and their upload and download ([`volume`]), and the
//! bytes between a node and a target or another node ([`transfer`]).
//!
//! A job module imports steps, never another job; a step never imports a job.

pub(crate) mod catalog;
pub(crate) mod exec;
pub(crate) mod lookup;
pub(crate) mod scale;
pub(crate) mod transfer;
pub(crate) mod volume;
