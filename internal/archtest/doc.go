// Package archtest holds the test that keeps the package graph one-way:
// request → middleware → handler → tokens / store / upstream, nothing
// pointing back.
package archtest
