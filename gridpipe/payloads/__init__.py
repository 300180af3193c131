"""Payloads gridpipe jobs can execute; `demo` is the built-in one that runs anywhere. Imports only
`gridpipe.core`."""
