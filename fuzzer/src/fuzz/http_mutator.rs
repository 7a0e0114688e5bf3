//! What every HTTP mutator (`mutators`, `http_structure`) shares: picking at random, and
//! editing one request of a connection's bytes (parse leniently, edit, write raw bytes back).

use super::http::{Conversation, Request};
use libafl::inputs::{BytesInput, HasMutatorBytes};
use libafl::mutators::MutationResult;
use libafl::state::HasRand;
use libafl::{Error, HasMetadata};
use libafl_bolts::rands::Rand;
use std::num::NonZeroUsize;

pub(super) fn below<S: HasRand>(state: &mut S, n: usize) -> usize {
    state.rand_mut().below(NonZeroUsize::new(n.max(1)).unwrap())
}

pub(super) fn pick<S: HasRand, T: Copy>(state: &mut S, items: &[T]) -> T {
    items[below(state, items.len())]
}

/// Shared body of every HTTP mutator: parse, let `edit` change one request, write back.
pub(super) fn mutate_request<S: HasRand + HasMetadata>(
    state: &mut S,
    input: &mut BytesInput,
    edit: impl FnOnce(&mut S, &mut Request) -> bool,
) -> Result<MutationResult, Error> {
    let Some(mut conv) = Conversation::parse(input.mutator_bytes()) else { return Ok(MutationResult::Skipped) };
    let i = below(state, conv.requests.len());
    if !edit(state, &mut conv.requests[i]) {
        return Ok(MutationResult::Skipped);
    }
    *input = BytesInput::new(conv.to_bytes());
    Ok(MutationResult::Mutated)
}

/// A mutator that edits one request of the connection (`mutate_request`) with `$body`.
macro_rules! http_mutator {
    ($(#[$doc:meta])* $name:ident, |$state:ident, $req:ident| $body:block) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name;

        impl ::libafl_bolts::Named for $name {
            fn name(&self) -> &::std::borrow::Cow<'static, str> {
                static NAME: ::std::borrow::Cow<'static, str> = ::std::borrow::Cow::Borrowed(stringify!($name));
                &NAME
            }
        }

        impl<S: ::libafl::state::HasRand + ::libafl::HasMetadata> ::libafl::mutators::Mutator<::libafl::inputs::BytesInput, S>
            for $name
        {
            fn mutate(
                &mut self,
                state: &mut S,
                input: &mut ::libafl::inputs::BytesInput,
            ) -> Result<::libafl::mutators::MutationResult, ::libafl::Error> {
                $crate::fuzz::http_mutator::mutate_request(state, input, |$state, $req| $body)
            }

            fn post_exec(&mut self, _: &mut S, _: Option<::libafl::corpus::CorpusId>) -> Result<(), ::libafl::Error> {
                Ok(())
            }
        }
    };
}
pub(super) use http_mutator;
