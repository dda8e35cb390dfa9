//! Rendering results: the Locust-style console tables and the JSON summary.
