/* test_config.c — layered configuration: defaults < file < env < flags. */
#include "testutil.h"
#include "tributary/core_config.h"
#include "tributary/core_exit.h"
#include "tributary/core_redis.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct conf {
    char *name;
    int64_t port;
    double ratio;
    bool force;
    char *format;
    core_cfg_list datasets;
    char *password;
    char *needed;
};

static const core_config_key keys[] = {
    { "name", CORE_CFG_STR, "tributary", 0, offsetof(struct conf, name), "a name", 0, 0, NULL },
    { "http.port", CORE_CFG_INT, "8080", 0, offsetof(struct conf, port), "port", 0, 65535, NULL },
    { "ratio", CORE_CFG_DOUBLE, "0.5", 0, offsetof(struct conf, ratio), "ratio", 0, 1, NULL },
    { "force", CORE_CFG_BOOL, "false", 0, offsetof(struct conf, force), "force", 0, 0, NULL },
    { "format", CORE_CFG_ENUM, "csv", 0, offsetof(struct conf, format), "format", 0, 0, "csv|jsonl" },
    { "dataset", CORE_CFG_LIST, NULL, 0, offsetof(struct conf, datasets), "datasets", 0, 0, NULL },
    { "redis.password", CORE_CFG_STR, NULL, CORE_CFG_SECRET, offsetof(struct conf, password), "pw", 0, 0, NULL },
    CORE_CFG_END
};

static const core_config_key required_keys[] = {
    { "needed", CORE_CFG_STR, NULL, CORE_CFG_REQUIRED, offsetof(struct conf, needed), "needed", 0, 0, NULL },
    CORE_CFG_END
};

static char errstr[512];

static int load(core_config_t **cp, struct conf *k, char **argv, char **envp)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    memset(k, 0, sizeof(*k));
    *cp = core_config_new("test");
    ck_assert_int_eq(core_config_add_table(*cp, keys, k), 0);
    errstr[0] = '\0';
    return core_config_load(*cp, argc, argv, envp, errstr, sizeof(errstr));
}

START_TEST(defaults_fill_struct)
{
    core_config_t *c;
    struct conf k;
    char *argv[] = { "prog", NULL };
    char *envp[] = { NULL };

    ck_assert_int_eq(load(&c, &k, argv, envp), 0);
    ck_assert_str_eq(k.name, "tributary");
    ck_assert_int_eq(k.port, 8080);
    ck_assert(k.ratio == 0.5);
    ck_assert(!k.force);
    ck_assert_str_eq(k.format, "csv");
    ck_assert_uint_eq(k.datasets.n, 0);
    ck_assert_ptr_null(k.password);
    ck_assert_str_eq(core_config_source(c, "http.port"), "default");
    core_config_free(c);
}
END_TEST

START_TEST(layers_override_in_order)
{
    core_config_t *c;
    struct conf k;
    char *path = tu_write_temp("# comment\n! also a comment\n\nname = from-file\nhttp.port=9000\n"
                               "ratio : 0.25\nkafka.linger.ms = 5\nkafka.acks=all\n");
    char cfgflag[512];
    snprintf(cfgflag, sizeof(cfgflag), "--config=%s", path);
    char *argv[] = { "prog", cfgflag, "--http.port", "9100", "--kafka.linger.ms=20", "in.csv", NULL };
    char *envp[] = { "TB_NAME=from-env", "TB_HTTP_PORT=9050", "TB_KAFKA_COMPRESSION_CODEC=lz4", "PATH=/bin", NULL };

    ck_assert_msg(load(&c, &k, argv, envp) == 0, "%s", errstr);
    ck_assert_str_eq(k.name, "from-env");           /* env beats file */
    ck_assert_int_eq(k.port, 9100);                  /* flag beats env */
    ck_assert(k.ratio == 0.25);                      /* file beats default */
    ck_assert_str_eq(core_config_source(c, "name"), "env");
    ck_assert_str_eq(core_config_source(c, "ratio"), "file");
    ck_assert_str_eq(core_config_kafka_lookup(c, "linger.ms"), "20");
    ck_assert_str_eq(core_config_kafka_lookup(c, "acks"), "all");
    ck_assert_str_eq(core_config_kafka_lookup(c, "compression.codec"), "lz4");
    ck_assert_uint_eq(core_config_kafka_count(c), 3);
    ck_assert_uint_eq(core_config_nargs(c), 1);
    ck_assert_str_eq(core_config_arg(c, 0), "in.csv");
    core_config_free(c);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(unknown_key_in_file_is_refused)
{
    core_config_t *c;
    struct conf k;
    char *path = tu_write_temp("name = x\nhttp.prot = 80\n");
    char *argv[] = { "prog", "--config", path, NULL };
    char *envp[] = { NULL };

    ck_assert_int_eq(load(&c, &k, argv, envp), CORE_EX_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "http.prot"));
    ck_assert_ptr_nonnull(strstr(errstr, "line 2"));
    ck_assert_ptr_null(strchr(errstr, '\n'));
    core_config_free(c);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(bad_values_are_refused_naming_the_key)
{
    static const struct { const char *flag; const char *key; } cases[] = {
        { "--http.port=abc", "http.port" },
        { "--http.port=70000", "http.port" },
        { "--http.port=12x", "http.port" },
        { "--ratio=2", "ratio" },
        { "--ratio=nan", "ratio" },
        { "--force=maybe", "force" },
        { "--format=xml", "format" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        core_config_t *c;
        struct conf k;
        char *argv[] = { "prog", (char *)cases[i].flag, NULL };
        char *envp[] = { NULL };
        ck_assert_msg(load(&c, &k, argv, envp) == CORE_EX_CONFIG, "%s accepted", cases[i].flag);
        ck_assert_msg(strstr(errstr, cases[i].key) != NULL, "'%s' does not name %s", errstr, cases[i].key);
        core_config_free(c);
    }
}
END_TEST

START_TEST(malformed_file_lines)
{
    const char *bodies[] = { "just words\n", "= value\n" };
    for (size_t i = 0; i < 2; i++) {
        core_config_t *c;
        struct conf k;
        char *path = tu_write_temp(bodies[i]);
        char *argv[] = { "prog", "--config", path, NULL };
        char *envp[] = { NULL };
        ck_assert_int_eq(load(&c, &k, argv, envp), CORE_EX_CONFIG);
        ck_assert_ptr_nonnull(strstr(errstr, "line 1"));
        core_config_free(c);
        unlink(path);
        free(path);
    }
}
END_TEST

/* A line without '=' is not shown: it may be a secret with its '=' lost. */
START_TEST(malformed_line_not_quoted)
{
    core_config_t *c;
    struct conf k;
    char *path = tu_write_temp("# settings\npg.password hunter2\n");
    char *argv[] = { "prog", "--config", path, NULL };
    char *envp[] = { NULL };
    ck_assert_int_eq(load(&c, &k, argv, envp), CORE_EX_CONFIG);
    ck_assert_msg(strstr(errstr, "line 2") && !strstr(errstr, "hunter2"), "%s", errstr);
    core_config_free(c);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(missing_config_file)
{
    core_config_t *c;
    struct conf k;
    char *argv[] = { "prog", "--config", "/nonexistent/tb.properties", NULL };
    char *envp[] = { NULL };

    ck_assert_int_eq(load(&c, &k, argv, envp), CORE_EX_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "/nonexistent/tb.properties"));
    core_config_free(c);
}
END_TEST

START_TEST(unknown_env_and_flag)
{
    core_config_t *c;
    struct conf k;
    char *argv[] = { "prog", NULL };
    char *envp[] = { "TB_HTTP_PROT=1", NULL };

    ck_assert_int_eq(load(&c, &k, argv, envp), CORE_EX_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "TB_HTTP_PROT"));
    core_config_free(c);

    char *argv2[] = { "prog", "--datset", "payee", NULL };
    char *envp2[] = { NULL };
    ck_assert_int_eq(load(&c, &k, argv2, envp2), CORE_EX_USAGE);
    ck_assert_ptr_nonnull(strstr(errstr, "--datset"));
    core_config_free(c);

    char *argv3[] = { "prog", "--name", NULL };
    ck_assert_int_eq(load(&c, &k, argv3, envp2), CORE_EX_USAGE);
    ck_assert_ptr_nonnull(strstr(errstr, "--name"));
    core_config_free(c);
}
END_TEST

START_TEST(required_key_missing)
{
    core_config_t *c = core_config_new("test");
    struct conf k;
    char *argv[] = { "prog", NULL };
    char *envp[] = { NULL };

    memset(&k, 0, sizeof(k));
    core_config_add_table(c, keys, &k);
    core_config_add_table(c, required_keys, &k);
    ck_assert_int_eq(core_config_load(c, 1, argv, envp, errstr, sizeof(errstr)), CORE_EX_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "needed"));
    ck_assert_ptr_nonnull(strstr(errstr, "TB_NEEDED"));
    core_config_free(c);
}
END_TEST

START_TEST(lists_and_bool_flags)
{
    core_config_t *c;
    struct conf k;
    char *argv[] = { "prog", "--dataset", "payee", "--force", "--dataset=event", "file1", "--", "--notaflag", NULL };
    char *envp[] = { "TB_DATASET=ignored,by,flags", NULL };

    ck_assert_msg(load(&c, &k, argv, envp) == 0, "%s", errstr);
    ck_assert(k.force);
    ck_assert_uint_eq(k.datasets.n, 2);
    ck_assert_str_eq(k.datasets.v[0], "payee");
    ck_assert_str_eq(k.datasets.v[1], "event");
    ck_assert_uint_eq(core_config_nargs(c), 2);
    ck_assert_str_eq(core_config_arg(c, 1), "--notaflag");
    core_config_free(c);

    char *argv2[] = { "prog", NULL };
    ck_assert_msg(load(&c, &k, argv2, envp) == 0, "%s", errstr);
    ck_assert_uint_eq(k.datasets.n, 3);
    ck_assert_str_eq(k.datasets.v[2], "flags");
    core_config_free(c);
}
END_TEST

START_TEST(secrets_from_files)
{
    core_config_t *c;
    struct conf k;
    char *pw = tu_write_temp("s3cret\n");
    char *kpw = tu_write_temp("kafka-pw");
    char env1[512], env2[512];
    snprintf(env1, sizeof(env1), "TB_REDIS_PASSWORD_FILE=%s", pw);
    snprintf(env2, sizeof(env2), "TB_KAFKA_SASL_PASSWORD_FILE=%s", kpw);
    char *argv[] = { "prog", NULL };
    char *envp[] = { env1, env2, NULL };

    ck_assert_msg(load(&c, &k, argv, envp) == 0, "%s", errstr);
    ck_assert_str_eq(k.password, "s3cret");
    ck_assert_str_eq(core_config_kafka_lookup(c, "sasl.password"), "kafka-pw");
    core_config_free(c);

    char flag[512];
    snprintf(flag, sizeof(flag), "--redis.password_file=%s", kpw);
    char *argv2[] = { "prog", flag, NULL };
    char *envp2[] = { NULL };
    ck_assert_msg(load(&c, &k, argv2, envp2) == 0, "%s", errstr);
    ck_assert_str_eq(k.password, "kafka-pw");
    core_config_free(c);

    char *argv3[] = { "prog", "--redis.password_file=/nonexistent/pw", NULL };
    ck_assert_int_eq(load(&c, &k, argv3, envp2), CORE_EX_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "redis.password"));
    core_config_free(c);
    unlink(pw);
    unlink(kpw);
    free(pw);
    free(kpw);
}
END_TEST

/* libcore's redis.* keys in a service's table (CORE_REDIS_CONFIG_KEYS):
 * the same defaults and ranges for every service, the password from a
 * file, the checks between keys naming them. */
struct svc_conf {
    char *own;
    core_redis_config redis;
};

static const core_config_key svc_keys[] = {
    { "own", CORE_CFG_STR, "x", 0, offsetof(struct svc_conf, own), "own key", 0, 0, NULL },
    CORE_REDIS_CONFIG_KEYS(struct svc_conf, redis),
    CORE_CFG_END
};

static int load_svc(struct svc_conf *k, const char *flag1, const char *flag2)
{
    char *argv[] = { "prog", (char *)flag1, (char *)flag2, NULL };
    char *envp[] = { NULL };
    int argc = flag1 ? (flag2 ? 3 : 2) : 1;
    core_config_t *c = core_config_new("test");
    int rc;

    memset(k, 0, sizeof(*k));
    ck_assert_int_eq(core_config_add_table(c, svc_keys, k), 0);
    errstr[0] = '\0';
    rc = core_config_load(c, argc, argv, envp, errstr, sizeof(errstr));
    /* the strings live in the config: keep what the checks below read */
    static char host[64], user[64], pw[64];
    snprintf(host, sizeof(host), "%s", k->redis.host ? k->redis.host : "(null)");
    snprintf(user, sizeof(user), "%s", k->redis.user ? k->redis.user : "");
    snprintf(pw, sizeof(pw), "%s", k->redis.password ? k->redis.password : "");
    k->redis.host = host;
    k->redis.user = user[0] ? user : NULL;
    k->redis.password = pw[0] ? pw : NULL;
    k->own = NULL;
    core_config_free(c);
    return rc;
}

START_TEST(redis_keys_shared_with_their_ranges)
{
    static const struct {
        const char *flag;
        bool ok;
    } edges[] = {
        { "--redis.port=0", false },      { "--redis.port=1", true },
        { "--redis.port=65535", true },   { "--redis.port=65536", false },
        { "--redis.db=-1", false },       { "--redis.db=0", true },
        { "--redis.db=65535", true },     { "--redis.db=65536", false },
        { "--redis.connect.timeout.ms=0", false },
        { "--redis.connect.timeout.ms=1", true },
        { "--redis.command.timeout.ms=600000", true },
        { "--redis.command.timeout.ms=600001", false },
        { "--redis.backoff.base.ms=0", false },
        { "--redis.backoff.max.ms=600000", true },
        { "--redis.db=9223372036854775808", false },
        { "--redis.host=", true },
    };
    struct svc_conf k;
    core_redis_opts o;
    char addr[64];

    ck_assert_int_eq(load_svc(&k, NULL, NULL), 0);
    ck_assert_str_eq(k.redis.host, "127.0.0.1");
    ck_assert_int_eq(k.redis.port, 6379);
    ck_assert_ptr_null(k.redis.user);
    ck_assert_ptr_null(k.redis.password);
    ck_assert_int_eq(k.redis.db, 0);
    ck_assert_int_eq(k.redis.connect_timeout_ms, 2000);
    ck_assert_int_eq(k.redis.command_timeout_ms, 5000);
    ck_assert_int_eq(k.redis.backoff_base_ms, 100);
    ck_assert_int_eq(k.redis.backoff_max_ms, 5000);
    core_redis_config_opts(&k.redis, &o);
    ck_assert_str_eq(o.host, "127.0.0.1");
    ck_assert_int_eq(o.port, 6379);
    ck_assert_int_eq(o.command_timeout_ms, 5000);
    core_redis_config_address(&k.redis, addr, sizeof(addr));
    ck_assert_str_eq(addr, "127.0.0.1:6379");
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        int rc = load_svc(&k, edges[i].flag, NULL);
        ck_assert_msg((rc == 0) == edges[i].ok, "%s: %d %s", edges[i].flag, rc, errstr);
        if (!edges[i].ok) { /* the refusal names the key */
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)strcspn(edges[i].flag + 2, "="),
                     edges[i].flag + 2);
            ck_assert_msg(strstr(errstr, key), "%s: %s", edges[i].flag, errstr);
        }
    }

    /* the password from a file (its newline dropped) */
    char *pw = tu_write_temp("s3cret\n");
    char flag[512];
    snprintf(flag, sizeof(flag), "--redis.password_file=%s", pw);
    ck_assert_msg(load_svc(&k, flag, "--redis.user=feeder") == 0, "%s", errstr);
    ck_assert_str_eq(k.redis.password, "s3cret");
    ck_assert_str_eq(core_redis_config_refused_key(&k.redis, "WRONGPASS"),
                     "redis.user / redis.password");
    ck_assert_str_eq(core_redis_config_refused_key(&k.redis, "SELECT 3: ERR DB index"),
                     "redis.db");
    core_redis_t *r = core_redis_config_new(&k.redis, NULL, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    core_redis_free(r);
    unlink(pw);
    free(pw);

    /* checks between keys, naming them */
    ck_assert_int_eq(load_svc(&k, "--redis.user=feeder", NULL), 0);
    ck_assert_str_eq(core_redis_config_refused_key(&k.redis, "WRONGPASS"),
                     "redis.user / redis.password");
    ck_assert_ptr_null(core_redis_config_new(&k.redis, NULL, errstr, sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "redis.user") && strstr(errstr, "redis.password"), "%s",
                  errstr);
    ck_assert_int_eq(load_svc(&k, "--redis.backoff.base.ms=5001", NULL), 0);
    ck_assert_ptr_null(core_redis_config_new(&k.redis, NULL, errstr, sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "redis.backoff.base.ms"), "%s", errstr);
    ck_assert_int_eq(load_svc(&k, "--redis.backoff.base.ms=5000", NULL), 0); /* base = max */
    r = core_redis_config_new(&k.redis, NULL, errstr, sizeof(errstr));
    ck_assert_msg(r != NULL, "%s", errstr);
    core_redis_free(r);
    ck_assert_int_eq(load_svc(&k, "--redis.host=/run/redis.sock", NULL), 0);
    core_redis_config_address(&k.redis, addr, sizeof(addr));
    ck_assert_str_eq(addr, "/run/redis.sock");
    ck_assert_int_eq(load_svc(&k, "--redis.host=::1", "--redis.port=6380"), 0);
    core_redis_config_address(&k.redis, addr, sizeof(addr));
    ck_assert_str_eq(addr, "[::1]:6380");
    ck_assert_str_eq(core_redis_config_refused_key(&k.redis, "WRONGPASS"), "redis.password");
}
END_TEST

START_TEST(help_and_version)
{
    core_config_t *c;
    struct conf k;
    char *argv[] = { "prog", "--help", NULL };
    char *envp[] = { NULL };
    char *text;
    size_t len;
    FILE *f;

    ck_assert_int_eq(load(&c, &k, argv, envp), 0);
    ck_assert(core_config_help_requested(c));
    f = open_memstream(&text, &len);
    core_config_print_help(c, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "--http.port"));
    ck_assert_ptr_nonnull(strstr(text, "TB_HTTP_PORT"));
    ck_assert_ptr_nonnull(strstr(text, "one of csv|jsonl"));
    ck_assert_ptr_nonnull(strstr(text, "TB_REDIS_PASSWORD_FILE"));
    free(text);
    core_config_free(c);

    char *argv2[] = { "prog", "--version", NULL };
    ck_assert_int_eq(load(&c, &k, argv2, envp), 0);
    ck_assert(core_config_version_requested(c));
    core_config_free(c);
}
END_TEST

START_TEST(env_names)
{
    char buf[64];
    core_config_env_name("kafka.linger.ms", buf, sizeof(buf));
    ck_assert_str_eq(buf, "TB_KAFKA_LINGER_MS");
    core_config_env_name("http-port", buf, sizeof(buf));
    ck_assert_str_eq(buf, "TB_HTTP_PORT");
    core_config_env_name("a.very.long.key.name", buf, 8);
    ck_assert_uint_eq(strlen(buf), 7);
}
END_TEST

START_TEST(huge_config_file_refused)
{
    core_config_t *c;
    struct conf k;
    char path[] = "/tmp/tributary-big-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 10 * 1024 * 1024), 0);
    close(fd);
    char *argv[] = { "prog", "--config", path, NULL };
    char *envp[] = { NULL };
    ck_assert_int_eq(load(&c, &k, argv, envp), CORE_EX_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "exceeds"));
    core_config_free(c);
    unlink(path);
}
END_TEST

/* An integer key's range is compared as integers: through a double,
 * 2^53 + 1 would pass a maximum of 2^53 (issue 15's class). */
START_TEST(int_range_2p53_plus_1_refused)
{
    struct big { int64_t n; } b;
    static const core_config_key big_keys[] = {
        { "n", CORE_CFG_INT, "0", 0, offsetof(struct big, n), "n", -9007199254740992.0,
          9007199254740992.0, NULL },
        CORE_CFG_END
    };
    static const struct { const char *flag; int rc; int64_t v; } cases[] = {
        { "--n=9007199254740992", 0, 9007199254740992LL },
        { "--n=9007199254740993", CORE_EX_CONFIG, 0 },
        { "--n=-9007199254740992", 0, -9007199254740992LL },
        { "--n=-9007199254740993", CORE_EX_CONFIG, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        core_config_t *c = core_config_new("test");
        char *argv[] = { "prog", (char *)cases[i].flag, NULL };
        char *envp[] = { NULL };

        memset(&b, 0, sizeof(b));
        ck_assert_int_eq(core_config_add_table(c, big_keys, &b), 0);
        ck_assert_msg(core_config_load(c, 2, argv, envp, errstr, sizeof(errstr)) == cases[i].rc,
                      "%s: %s", cases[i].flag, errstr);
        if (cases[i].rc == 0)
            ck_assert(b.n == cases[i].v);
        else
            ck_assert_ptr_nonnull(strstr(errstr, "out of range"));
        core_config_free(c);
    }
}
END_TEST

/* A former (dashed) key name still works one release, in the file and as a
 * flag (a bool flag alone too), landing on the new key, with one warning
 * per old name that names the new key. The new names warn nothing. */
START_TEST(dashed_alias_accepted_with_warning)
{
    struct al { int64_t batch; bool dry; char *tables; } a;
    static const core_config_key al_keys[] = {
        { "batch.size", CORE_CFG_INT, "10", 0, offsetof(struct al, batch), "batch", 1, 1000,
          NULL },
        { "dry.run", CORE_CFG_BOOL, "false", 0, offsetof(struct al, dry), "dry", 0, 0, NULL },
        { "create.tables", CORE_CFG_STR, NULL, 0, offsetof(struct al, tables), "tables", 0, 0,
          NULL },
        CORE_CFG_END
    };
    static const core_config_alias al_aliases[] = {
        { "batch-size", "batch.size" },
        { "dry-run", "dry.run" },
        { "create-tables", "create.tables" },
        CORE_CFG_ALIAS_END
    };
    char *path = tu_write_temp("batch-size = 7\ncreate-tables = yes\n");
    char cfgflag[512];
    core_config_t *c;

    snprintf(cfgflag, sizeof(cfgflag), "--config=%s", path);
    {
        char *argv[] = { "prog", cfgflag, "--dry-run", NULL };
        char *envp[] = { NULL };

        memset(&a, 0, sizeof(a));
        c = core_config_new("test");
        ck_assert_int_eq(core_config_add_table(c, al_keys, &a), 0);
        ck_assert_int_eq(core_config_add_aliases(c, al_aliases), 0);
        ck_assert_msg(core_config_load(c, 3, argv, envp, errstr, sizeof(errstr)) == 0, "%s",
                      errstr);
        ck_assert_int_eq(a.batch, 7);
        ck_assert(a.dry);
        ck_assert_str_eq(a.tables, "yes");
        ck_assert_str_eq(core_config_source(c, "batch.size"), "file");
        ck_assert_uint_eq(core_config_nwarnings(c), 3);
        ck_assert_str_eq(core_config_warning(c, 0), "batch-size is deprecated: use batch.size "
                                                    "(the old name goes in the next release)");
        ck_assert_ptr_nonnull(strstr(core_config_warning(c, 1), "use create.tables"));
        ck_assert_ptr_nonnull(strstr(core_config_warning(c, 2), "use dry.run"));
        ck_assert_ptr_null(core_config_warning(c, 3));
        core_config_free(c);
    }
    {
        /* the old name twice (file, then flag) warns once; the flag wins */
        char *argv[] = { "prog", cfgflag, "--batch-size", "9", "--create.tables=no", NULL };
        char *envp[] = { NULL };

        memset(&a, 0, sizeof(a));
        c = core_config_new("test");
        ck_assert_int_eq(core_config_add_table(c, al_keys, &a), 0);
        ck_assert_int_eq(core_config_add_aliases(c, al_aliases), 0);
        ck_assert_msg(core_config_load(c, 5, argv, envp, errstr, sizeof(errstr)) == 0, "%s",
                      errstr);
        ck_assert_int_eq(a.batch, 9);
        ck_assert_str_eq(a.tables, "no");
        ck_assert_uint_eq(core_config_nwarnings(c), 2);
        core_config_free(c);
    }
    {
        /* the new names: no warning; an old name out of range is refused by it */
        char *argv[] = { "prog", "--batch.size=5", "--dry.run", NULL };
        char *bad[] = { "prog", "--batch-size=0", NULL };
        char *envp[] = { "TB_BATCH_SIZE=3", NULL };

        c = core_config_new("test");
        ck_assert_int_eq(core_config_add_table(c, al_keys, &a), 0);
        ck_assert_int_eq(core_config_add_aliases(c, al_aliases), 0);
        ck_assert_int_eq(core_config_load(c, 3, argv, envp, errstr, sizeof(errstr)), 0);
        ck_assert_int_eq(a.batch, 5);
        ck_assert_uint_eq(core_config_nwarnings(c), 0);
        core_config_free(c);
        c = core_config_new("test");
        ck_assert_int_eq(core_config_add_table(c, al_keys, &a), 0);
        ck_assert_int_eq(core_config_add_aliases(c, al_aliases), 0);
        ck_assert_int_eq(core_config_load(c, 2, bad, envp, errstr, sizeof(errstr)),
                         CORE_EX_CONFIG);
        ck_assert_ptr_nonnull(strstr(errstr, "batch.size"));
        core_config_free(c);
    }
    unlink(path);
    free(path);
}
END_TEST

/* A deprecated key keeps its own meaning; a value given to it (in any
 * layer) warns naming the key to use; its default does not. */
START_TEST(deprecated_key_works_and_warns_naming_the_new_one)
{
    struct dk { char *prefix, *tmpl; } d;
    static const core_config_key dk_keys[] = {
        { "topic.prefix", CORE_CFG_STR, "", 0, offsetof(struct dk, prefix), "p", 0, 0, NULL },
        { "topic.template", CORE_CFG_STR, "{dataset}.valid", 0, offsetof(struct dk, tmpl), "t", 0,
          0, NULL },
        CORE_CFG_END
    };
    static const core_config_alias dk_deprecated[] = {
        { "topic.template", "topic.prefix" },
        CORE_CFG_ALIAS_END
    };
    char *set[] = { "prog", "--topic.template=x.{dataset}.valid", NULL };
    char *unset[] = { "prog", "--topic.prefix=x.", NULL };
    char *env_only[] = { "prog", NULL };
    char *envp[] = { NULL };
    char *envp_set[] = { "TB_TOPIC_TEMPLATE=e.{dataset}", NULL };
    struct { char **argv; int argc; char **envp; size_t warnings; const char *tmpl; } cases[] = {
        { set, 2, envp, 1, "x.{dataset}.valid" },
        { unset, 2, envp, 0, "{dataset}.valid" },
        { env_only, 1, envp_set, 1, "e.{dataset}" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        core_config_t *c = core_config_new("test");

        memset(&d, 0, sizeof(d));
        ck_assert_int_eq(core_config_add_table(c, dk_keys, &d), 0);
        ck_assert_int_eq(core_config_add_deprecated(c, dk_deprecated), 0);
        ck_assert_msg(core_config_load(c, cases[i].argc, cases[i].argv, cases[i].envp, errstr,
                                       sizeof(errstr)) == 0,
                      "%s", errstr);
        ck_assert_str_eq(d.tmpl, cases[i].tmpl);
        ck_assert_uint_eq(core_config_nwarnings(c), cases[i].warnings);
        if (cases[i].warnings)
            ck_assert_str_eq(core_config_warning(c, 0),
                             "topic.template is deprecated: use topic.prefix (topic.template "
                             "goes in the next release)");
        core_config_free(c);
    }
}
END_TEST

/* The exit codes come from one table with their names. */
START_TEST(exit_codes_one_table)
{
    static const struct { int code; const char *name; } t[] = {
        { CORE_EX_OK, "ok" }, { CORE_EX_USAGE, "usage" }, { CORE_EX_DATAERR, "dataerr" },
        { CORE_EX_NOINPUT, "noinput" }, { CORE_EX_UNAVAILABLE, "unavailable" },
        { CORE_EX_SOFTWARE, "software" }, { CORE_EX_TEMPFAIL, "tempfail" },
        { CORE_EX_CONFIG, "config" },
    };
    static const int sysexits[] = { 0, 64, 65, 66, 69, 70, 75, 78 };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ck_assert_int_eq(t[i].code, sysexits[i]);
        ck_assert_str_eq(core_exit_name(t[i].code), t[i].name);
    }
    ck_assert_str_eq(core_exit_name(1), "unknown");
    ck_assert_str_eq(core_exit_name(-1), "unknown");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults_fill_struct);
    tcase_add_test(tc, layers_override_in_order);
    tcase_add_test(tc, unknown_key_in_file_is_refused);
    tcase_add_test(tc, bad_values_are_refused_naming_the_key);
    tcase_add_test(tc, malformed_file_lines);
    tcase_add_test(tc, malformed_line_not_quoted);
    tcase_add_test(tc, missing_config_file);
    tcase_add_test(tc, unknown_env_and_flag);
    tcase_add_test(tc, required_key_missing);
    tcase_add_test(tc, lists_and_bool_flags);
    tcase_add_test(tc, secrets_from_files);
    tcase_add_test(tc, redis_keys_shared_with_their_ranges);
    tcase_add_test(tc, help_and_version);
    tcase_add_test(tc, env_names);
    tcase_add_test(tc, huge_config_file_refused);
    tcase_add_test(tc, int_range_2p53_plus_1_refused);
    tcase_add_test(tc, dashed_alias_accepted_with_warning);
    tcase_add_test(tc, exit_codes_one_table);
    tcase_add_test(tc, deprecated_key_works_and_warns_naming_the_new_one);
    suite_add_tcase(s, tc);
    return tu_run(&s, 1);
}
