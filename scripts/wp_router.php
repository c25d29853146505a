<?php
/**
 * Router for PHP's built-in web server, serving mailflow's test WordPress.
 *
 * Started by scripts/test-services as
 *     php -S 127.0.0.1:PORT -t var/services/wordpress/root scripts/wp_router.php
 *
 * The document root is a "shadow" of /usr/share/wordpress: symbolic links to every entry
 * of the Debian package except wp-config.php, which is a real file written by
 * scripts/test-services. Defining ABSPATH here, before WordPress loads, makes WordPress
 * read that private wp-config.php instead of Debian's, which would look for a
 * configuration in /etc/wordpress. Nothing outside the repository is written.
 *
 * Static files are left to the built-in server; PHP files run here; every other path
 * (/wp-json/..., /some-post-slug/) goes to WordPress's front controller, index.php.
 */

$docroot = rtrim($_SERVER['DOCUMENT_ROOT'], '/');
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');

if (str_contains($path, "\0") || str_contains($path, '/../') || str_ends_with($path, '/..')) {
    http_response_code(400);
    return true;
}

$target = $docroot . $path;
if (is_dir($target)) {
    if (!str_ends_with($path, '/')) {
        // Let relative links in wp-admin resolve the way they would under Apache.
        $query = parse_url($_SERVER['REQUEST_URI'], PHP_URL_QUERY);
        header('Location: ' . $path . '/' . ($query !== null ? '?' . $query : ''), true, 301);
        return true;
    }
    $target = rtrim($target, '/') . '/index.php';
}

if (is_file($target) && !str_ends_with($target, '.php')) {
    return false; // a static file: the built-in server sends it as it is
}
if (!is_file($target)) {
    $target = $docroot . '/index.php'; // pretty permalinks and the REST API
}

define('ABSPATH', $docroot . '/');
$script = substr($target, strlen($docroot));
$_SERVER['SCRIPT_FILENAME'] = $target;
$_SERVER['SCRIPT_NAME'] = $script;
$_SERVER['PHP_SELF'] = $script;
chdir(dirname($target));
require $target;
