<?php
/**
 * Installs a fresh WordPress site for mailflow's tests (PHP command line only).
 *
 * Run by scripts/test-services after it has created an empty database and written the
 * private wp-config.php into the shadow document root. Reads its settings from the
 * environment:
 *
 *   MAILFLOW_WP_ROOT        the shadow document root (becomes ABSPATH)
 *   MAILFLOW_WP_URL         the site address, e.g. http://127.0.0.1:31080
 *   MAILFLOW_WP_USER        administrator login
 *   MAILFLOW_WP_PASSWORD    administrator password
 *   MAILFLOW_WP_EMAIL       administrator e-mail address
 *
 * Installs the site, sets the permalink structure to /%postname%/, creates an application
 * password for the administrator and prints that password (and nothing else) on stdout.
 */

if (PHP_SAPI !== 'cli') {
    http_response_code(403);
    exit(1);
}

/** Reads a required environment variable or stops with an error. */
function mailflow_env(string $name): string
{
    $value = getenv($name);
    if ($value === false || $value === '') {
        fwrite(STDERR, "wp_setup.php: $name is not set\n");
        exit(2);
    }
    return $value;
}

/** Stops with an error message on stderr. */
function mailflow_fail(string $message): void
{
    fwrite(STDERR, "wp_setup.php: $message\n");
    exit(1);
}

$root = rtrim(mailflow_env('MAILFLOW_WP_ROOT'), '/') . '/';
$url = mailflow_env('MAILFLOW_WP_URL');
$user = mailflow_env('MAILFLOW_WP_USER');
$password = mailflow_env('MAILFLOW_WP_PASSWORD');
$email = mailflow_env('MAILFLOW_WP_EMAIL');

// WordPress looks at the request even on the command line.
$parts = parse_url($url);
$_SERVER['HTTP_HOST'] = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = (string) ($parts['port'] ?? 80);
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';

define('ABSPATH', $root);
define('WP_INSTALLING', true);

/**
 * Replaces WordPress's "your new site" e-mail (a pluggable function in upgrade.php):
 * there is no local mailer, and the test inboxes must not receive anything unexpected.
 */
function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password)
{
}

require_once ABSPATH . 'wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

if (is_blog_installed()) {
    mailflow_fail('the database already holds a site; test-services must drop it first');
}

$result = wp_install('mailflow test site', $user, $email, false, '', wp_slash($password));
if (is_wp_error($result)) {
    mailflow_fail('wp_install: ' . $result->get_error_message());
}

global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');
flush_rewrite_rules(false); // "soft": stores the rules, writes no .htaccess

$admin = get_user_by('login', $user);
if (!$admin) {
    mailflow_fail("user $user was not created");
}
$created = WP_Application_Passwords::create_new_application_password(
    $admin->ID,
    array('name' => 'mailflow-tests')
);
if (is_wp_error($created)) {
    mailflow_fail('application password: ' . $created->get_error_message());
}

echo $created[0], PHP_EOL;
