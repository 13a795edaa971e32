// Package sluice is Python's asyncio streams rebuilt for Go.
package sluice
