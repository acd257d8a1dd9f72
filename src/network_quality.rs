//! Network quality estimator (being written).
