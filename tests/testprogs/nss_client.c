/*
 * nss_client: a small NSS/NSPR HTTPS client for the nss module's tests
 * (tests/bpf/test_nss.py). It also writes a plain file through NSPR
 * (PR_Open + PR_Write) in the same process and on the same thread, between
 * sending the TLS request and reading the TLS response, so the tests can
 * check that plain-file NSPR I/O is not captured as TLS data.
 *
 * Usage:
 *   nss_client HOST PORT PATH [options]
 *     --tls1.2 | --tls1.3     pin the protocol version (default: 1.2..1.3)
 *     --send                  use PR_Send/PR_Recv for the TLS data
 *                             (default: PR_Write/PR_Read)
 *     --file FILE             PR_Open(FILE) and PR_Write TEXT to it
 *     --file-text TEXT        text written to FILE (default "NSPR-FILE-TOKEN\n")
 *     --host-header NAME      Host header (default: HOST)
 *   Sends "GET PATH HTTP/1.1\r\nHost: ...\r\nConnection: close\r\n\r\n",
 *   prints the whole response to stdout, exit 0 on success.
 *   Certificate verification is disabled (SSL_AuthCertificateHook -> accept).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nspr.h>
#include <prio.h>
#include <prnetdb.h>
#include <nss.h>
#include <ssl.h>
#include <sslproto.h>

static SECStatus accept_any_cert(void *arg, PRFileDesc *fd, PRBool checkSig,
                                 PRBool isServer)
{
    (void)arg; (void)fd; (void)checkSig; (void)isServer;
    return SECSuccess;
}

static void die(const char *what)
{
    PRErrorCode e = PR_GetError();
    const char *name = PR_ErrorToName(e);
    fprintf(stderr, "nss_client: %s failed: %d (%s)\n", what, (int)e,
            name ? name : "?");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host, *path, *file = NULL, *file_text = "NSPR-FILE-TOKEN\n";
    const char *host_header = NULL;
    int port, use_send = 0;
    SSLVersionRange vr = { SSL_LIBRARY_VERSION_TLS_1_2, SSL_LIBRARY_VERSION_TLS_1_3 };

    if (argc < 4) {
        fprintf(stderr, "usage: %s HOST PORT PATH [--tls1.2|--tls1.3] [--send] "
                        "[--file FILE] [--file-text TEXT] [--host-header NAME]\n", argv[0]);
        return 1;
    }
    host = argv[1];
    port = atoi(argv[2]);
    path = argv[3];
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--tls1.2")) {
            vr.min = vr.max = SSL_LIBRARY_VERSION_TLS_1_2;
        } else if (!strcmp(argv[i], "--tls1.3")) {
            vr.min = vr.max = SSL_LIBRARY_VERSION_TLS_1_3;
        } else if (!strcmp(argv[i], "--send")) {
            use_send = 1;
        } else if (!strcmp(argv[i], "--file") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "--file-text") && i + 1 < argc) {
            file_text = argv[++i];
        } else if (!strcmp(argv[i], "--host-header") && i + 1 < argc) {
            host_header = argv[++i];
        } else {
            fprintf(stderr, "nss_client: bad argument %s\n", argv[i]);
            return 1;
        }
    }
    if (!host_header)
        host_header = host;

    PR_Init(PR_USER_THREAD, PR_PRIORITY_NORMAL, 1);
    if (NSS_NoDB_Init(NULL) != SECSuccess)
        die("NSS_NoDB_Init");
    if (NSS_SetDomesticPolicy() != SECSuccess)
        die("NSS_SetDomesticPolicy");

    /* Resolve HOST (numeric or name) */
    PRNetAddr addr;
    if (PR_StringToNetAddr(host, &addr) == PR_SUCCESS) {
        PR_SetNetAddr(PR_IpAddrNull, addr.raw.family, (PRUint16)port, &addr);
    } else {
        PRAddrInfo *ai = PR_GetAddrInfoByName(host, PR_AF_UNSPEC, PR_AI_ADDRCONFIG);
        if (!ai || !PR_EnumerateAddrInfo(NULL, ai, (PRUint16)port, &addr))
            die("PR_GetAddrInfoByName");
        PR_FreeAddrInfo(ai);
    }

    PRFileDesc *tcp = PR_OpenTCPSocket(addr.raw.family);
    if (!tcp)
        die("PR_OpenTCPSocket");
    PRFileDesc *ssl = SSL_ImportFD(NULL, tcp);  /* pushes the "SSL" layer */
    if (!ssl)
        die("SSL_ImportFD");
    if (SSL_OptionSet(ssl, SSL_SECURITY, PR_TRUE) != SECSuccess ||
        SSL_OptionSet(ssl, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE) != SECSuccess ||
        SSL_OptionSet(ssl, SSL_ENABLE_SESSION_TICKETS, PR_TRUE) != SECSuccess)
        die("SSL_OptionSet");
    if (SSL_VersionRangeSet(ssl, &vr) != SECSuccess)
        die("SSL_VersionRangeSet");
    if (SSL_AuthCertificateHook(ssl, accept_any_cert, NULL) != SECSuccess)
        die("SSL_AuthCertificateHook");
    if (SSL_SetURL(ssl, host_header) != SECSuccess)
        die("SSL_SetURL");

    if (PR_Connect(ssl, &addr, PR_SecondsToInterval(10)) != PR_SUCCESS)
        die("PR_Connect");
    if (SSL_ResetHandshake(ssl, PR_FALSE) != SECSuccess)
        die("SSL_ResetHandshake");
    if (SSL_ForceHandshake(ssl) != SECSuccess)
        die("SSL_ForceHandshake");

    SSLChannelInfo ci;
    if (SSL_GetChannelInfo(ssl, &ci, sizeof ci) == SECSuccess)
        fprintf(stderr, "nss_client: protocol 0x%04x, api %s\n",
                ci.protocolVersion, use_send ? "PR_Send/PR_Recv" : "PR_Write/PR_Read");

    char req[2048];
    int reqlen = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: nss_client\r\n"
                          "Connection: close\r\n\r\n", path, host_header);
    if (reqlen <= 0 || reqlen >= (int)sizeof req) {
        fprintf(stderr, "nss_client: path too long\n");
        return 1;
    }
    int off = 0;
    while (off < reqlen) {
        PRInt32 n = use_send
            ? PR_Send(ssl, req + off, reqlen - off, 0, PR_INTERVAL_NO_TIMEOUT)
            : PR_Write(ssl, req + off, reqlen - off);
        if (n <= 0)
            die(use_send ? "PR_Send" : "PR_Write");
        off += n;
    }

    /* Plain-file NSPR I/O on the same thread, while the TLS session is open. */
    if (file) {
        PRFileDesc *f = PR_Open(file, PR_WRONLY | PR_CREATE_FILE | PR_TRUNCATE, 0644);
        if (!f)
            die("PR_Open");
        PRInt32 len = (PRInt32)strlen(file_text);
        if (PR_Write(f, file_text, len) != len)
            die("PR_Write(file)");
        if (PR_Close(f) != PR_SUCCESS)
            die("PR_Close(file)");
    }

    char buf[16384];
    long total = 0;
    for (;;) {
        PRInt32 n = use_send
            ? PR_Recv(ssl, buf, sizeof buf, 0, PR_INTERVAL_NO_TIMEOUT)
            : PR_Read(ssl, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            /* nginx may close without close_notify after Connection: close */
            if (total > 0 && PR_GetError() == PR_END_OF_FILE_ERROR)
                break;
            die(use_send ? "PR_Recv" : "PR_Read");
        }
        fwrite(buf, 1, (size_t)n, stdout);
        total += n;
    }
    fflush(stdout);

    PR_Close(ssl);
    SSL_ClearSessionCache();
    if (NSS_Shutdown() != SECSuccess)
        fprintf(stderr, "nss_client: NSS_Shutdown failed (ignored)\n");
    PR_Cleanup();
    return total > 0 ? 0 : 3;
}
