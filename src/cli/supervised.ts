/**
 * Children of `iota local` never outlive it. It starts each with IOTA_SUPERVISED=1 and a pipe
 * on stdin that nobody writes to; when `iota local` dies, even by SIGKILL, the kernel closes the
 * pipe, the child sees end-of-file, stops as on SIGTERM (miners release their leases), and exits
 * on its own after a grace period if stopping takes longer.
 */
const GRACE_MS = 4000;

export function exitWithSupervisor(env: NodeJS.ProcessEnv = process.env): void {
  if (env.IOTA_SUPERVISED !== '1') return;
  let told = false;
  const gone = () => {
    if (told) return;
    told = true;
    setTimeout(() => process.exit(1), GRACE_MS).unref();
    process.kill(process.pid, 'SIGTERM');
  };
  process.stdin.on('end', gone);
  process.stdin.on('error', gone);
  process.stdin.resume();
  // The watch alone keeps no process alive: a child that is done exits as it would unsupervised.
  (process.stdin as unknown as { unref?: () => void }).unref?.();
}
