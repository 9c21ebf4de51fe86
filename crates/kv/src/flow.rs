//! Flows: the SQL layer's work over a range's rows (a filter, a projection,
//! partial aggregates), run by the range's leader so that only its result
//! crosses the network. This crate reads the rows and hands them over; what
//! the work is stays opaque to it.

/// Starts flows from their encoded specs.
pub trait FlowEvaluator: Send + Sync {
    /// A flow, ready for the rows of its span.
    fn start(&self, spec: &[u8]) -> Box<dyn FlowRun>;
}

/// One flow over one range's part of a span.
pub trait FlowRun: Send {
    /// Runs the flow over entries of the span, in key order. False once
    /// the flow has done a request's worth of work, or failed: the leader
    /// answers, and the gateway asks again from the next key.
    fn push(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> bool;
    /// The flow's encoded answer (its output, or its error).
    fn finish(self: Box<Self>) -> Vec<u8>;
}
