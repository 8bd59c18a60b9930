// Only for building this module on its own (`./gradlew assembleRelease publishToMavenLocal`); inside an app,
// include the folder instead and let the app's build supply the plugins.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.library") version "9.1.1"
        id("org.jetbrains.kotlin.android") version "2.4.20"
        id("com.google.protobuf") version "0.9.5"
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "digits-classifier"
