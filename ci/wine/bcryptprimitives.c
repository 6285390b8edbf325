/* A stand-in for Windows' bcryptprimitives.dll, for running agiNet's Windows app under Wine 8
 * (Debian 12), which lacks the DLL. Rust's standard library fills its random seeds with the
 * DLL's ProcessPrng (Windows 10 and later have it); this one forwards to RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has. It goes into the test Wine prefix's system32
 * (ci/wine-prefix.sh), never beside a shipped app: real Windows has the real DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
