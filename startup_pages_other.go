//go:build !linux

package main

// releaseStartupPages does nothing outside Linux, where whisperer is not meant to run but builds.
func releaseStartupPages() (int64, error) { return 0, nil }
