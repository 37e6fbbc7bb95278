/**
 * Loaded before every test file (scripts/test.mjs: `--import ./test/support/fast-check-sizes.ts`).
 *
 * NB: fast-check 4 generates arrays, strings and sets of at most about 10 elements when only a
 * `maxLength` is given (its default size is 'small'; fast-check 3 sized up to the `maxLength`).
 * Our properties state their sizes as `maxLength` ("groups of up to 60 inputs"), so that default
 * silently ran them on a sixth of what they say. With this setting an arbitrary given a
 * `maxLength` spans up to it again; arbitraries without one keep fast-check's default size.
 */
import fc from 'fast-check';

fc.configureGlobal({ ...fc.readConfigureGlobal(), defaultSizeToMaxWhenMaxSpecified: true });
