/** The native CPU kernels: loading the addon, the `native` tfjs backend, threads and counters. */
export {
  NATIVE,
  NATIVE_KERNELS,
  nativeStats,
  registerNativeBackend,
  resetNativeStats,
  startNativeProfile,
  stopNativeProfile,
  type NativeStats,
} from './backend.js';
export {
  addonPaths,
  loadNative,
  setThreads,
  threadCount,
  type NativeAddon,
  type NativeLoad,
} from './loader.js';
