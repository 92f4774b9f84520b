/* checks.c — the checksums and code lists the rules' "check" names
 * (checks.h): ABA, Luhn, IBAN, ISO 3166-1 alpha-2, ISO 4217, e-mail, UUID. */
#include "checks.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

bool vcheck_aba(const char *s)
{
    static const int w[9] = { 3, 7, 1, 3, 7, 1, 3, 7, 1 };
    int sum = 0;

    if (!s || strlen(s) != 9)
        return false;
    for (int i = 0; i < 9; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        sum += (s[i] - '0') * w[i];
    }
    return sum % 10 == 0 && strcmp(s, "000000000") != 0;
}

bool vcheck_luhn(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int sum = 0;

    if (n < 2)
        return false;
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[n - 1 - i];

        if (!isdigit((unsigned char)c))
            return false;
        d = c - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static const char iban_len[] =
    "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28"
    "EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27"
    "JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18"
    "NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28"
    "TL23TN24TR26UA29VA22VG24XK20YE30";

bool vcheck_iban(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int want = 0;
    unsigned rem = 0;

    if (n < 15 || n > 34 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[2]) || !isdigit((unsigned char)s[3]))
        return false;
    for (size_t i = 0; i + 4 <= sizeof(iban_len) - 1; i += 4)
        if (iban_len[i] == s[0] && iban_len[i + 1] == s[1]) {
            want = (iban_len[i + 2] - '0') * 10 + (iban_len[i + 3] - '0');
            break;
        }
    if (want == 0 || (size_t)want != n)
        return false;
    /* Move the first four characters to the end; letters are 10..35. */
    for (size_t k = 0; k < n; k++) {
        char c = s[(k + 4) % n];

        if (isdigit((unsigned char)c))
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else if (isupper((unsigned char)c))
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
        else
            return false;
    }
    return rem == 1;
}

/* Whether s is one of codes: codes of len upper-case letters, sorted, each
 * followed by one space (the last by the NUL). Binary search. */
static bool in_codes(const char *codes, size_t ncodes_bytes, const char *s, size_t len)
{
    size_t lo = 0, hi = (ncodes_bytes + 1) / (len + 1);

    if (!s || strnlen(s, len + 1) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isupper((unsigned char)s[i]))
            return false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(codes + mid * (len + 1), s, len);

        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ISO 3166-1 alpha-2, officially assigned codes. */
static const char iso3166[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/* ISO 4217 active codes (list one, 2024), without XTS and XXX (testing, none). */
static const char iso4217[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP "
    "DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR "
    "IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB "
    "PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS "
    "VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR XOF XPD XPF XPT XSU XUA YER ZAR "
    "ZMW ZWL";

bool vcheck_iso3166_alpha2(const char *s)
{
    return in_codes(iso3166, sizeof(iso3166) - 1, s, 2);
}

bool vcheck_iso4217(const char *s) { return in_codes(iso4217, sizeof(iso4217) - 1, s, 3); }

bool vcheck_email(const char *s)
{
    const char *at, *dom, *dot, *p;
    size_t n = s ? strlen(s) : 0;

    if (n < 6 || n > 254)
        return false;
    at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || (size_t)(at - s) > 64)
        return false;
    for (p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' ||
            *p == ';' || *p == '"' || *p == '(' || *p == ')' || *p == '[' || *p == ']' ||
            *p == '\\')
            return false;
    if (s[0] == '.' || at[-1] == '.' || strstr(s, ".."))
        return false;
    dom = at + 1;
    dot = strrchr(dom, '.');
    if (!dot || dot == dom || dom[0] == '.' || dom[0] == '-')
        return false;
    for (p = dom; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    /* The top-level label: two letters or more. */
    if (strlen(dot + 1) < 2)
        return false;
    for (p = dot + 1; *p; p++)
        if (!isalpha((unsigned char)*p))
            return false;
    return true;
}

bool vcheck_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}
